"""Measures the foundation recipes against the keras-io example convnet; writes BENCHMARKS.md.

  python scripts/benchmark.py --manual_dir=../shared/data/mnist

Trains `keras_example_cnn` (the reference), `mnist_cnn` and `mnist_mlp` from scratch on the
real MNIST, one after the other in this process, then times the input pipeline alone and
each model's training step with and without XLA.
About 15 minutes on a 2-core CPU.

  python scripts/benchmark.py --exported=saved_models/mnist_cnn/1,saved_models/mnist_mlp/1 \
      --manual_dir=../shared/data/mnist

measures every artifact of exported models instead (size, accuracy, single-image latency).

  python scripts/benchmark.py --gan=tf_tutorial_dcgan,dcgan_mnist --gan_minutes=10 \
      --manual_dir=../shared/data/mnist

trains the TensorFlow DCGAN tutorial and then `dcgan_mnist`, each with the whole machine for
the same wall-clock budget, and compares their FIDs (zoo.quality). About 23 minutes;
--gan_parallel trains both at once, one CPU core each (about 12 minutes).

  python scripts/benchmark.py --detection=detector_mnist --manual_dir=../shared/data/mnist

trains the detector recipe from scratch, exports it, and reports its COCO mAP (pycocotools),
training time, every exported file's mAP and one-image latency. About 30 minutes.
--detection=retinanet_mobilenet --detection_set=dataset=coco:DIR ... measures the photo
recipe on a COCO-format folder (e.g. one from scripts/make_coco_digits.py).

  python scripts/benchmark.py --serving=saved_models/mnist_cnn --manual_dir=../shared/data/mnist

load-tests scripts/serve.py on loopback: requests/s and p50/p99 latency of single-image
requests from 1 and 16 clients, batching off and on, beside the in-process SavedModel rate
at batch 1 and 16. About 5 minutes.

  python scripts/benchmark.py --seeds=0,1,2 --manual_dir=../shared/data/mnist

trains `mnist_cnn` and `mnist_mlp` (--seed_recipes) once per seed, reports each recipe's test
accuracy as mean ± std, min, median and max against its floor, then `--epochs=1` runs of each
and one `--deterministic` run (its time vs the same seed without). About 25 minutes.

  python scripts/benchmark.py --precision --manual_dir=../shared/data/mnist

compares the precision policies instead: training images/s of `mnist_mlp` and `mnist_cnn`
under float32, mixed_bfloat16 and mixed_float16, with and without XLA, and the test
accuracy of each full recipe (or --precision_epochs) trained under each policy. About 30
minutes on a 2-core CPU. Run it on a GPU machine to measure what mixed_float16 gives there.
"""

from zoo import cli  # First: quiets TensorFlow's start-up.

import json
import os
import sys
import tempfile

from absl import app, flags

import benchmark_lib as benchmarks  # Beside this script.
from zoo import flags as zoo_flags

zoo_flags.define_data_flags()
flags.DEFINE_list("recipes", ["keras_example_cnn", "mnist_cnn", "mnist_mlp"],
                  "Recipes to train, in order.")
flags.DEFINE_float("target_accuracy", 0.99, "Accuracy whose time-to-reach is compared.")
flags.DEFINE_string("contender", "mnist_cnn", "Recipe whose time to --target_accuracy is "
                    "compared with keras_example_cnn's.")
flags.DEFINE_integer("contender_epochs", 2, "Also train the contender with this shorter "
                     "budget (its cosine schedule shrinks with it) and compare that run's "
                     "time to target; 0 = compare the full-length run.")
flags.DEFINE_string("output", "BENCHMARKS.md", "Markdown file to update.")
flags.DEFINE_string("workdir", None, "Where runs go (default: a temporary directory).")
flags.DEFINE_list("exported", [], "Instead of training: measure these exported version "
                  "directories (size, accuracy, latency of every artifact).")
flags.DEFINE_bool("precision", False, "Instead of the foundation benchmark: compare the "
                  "precision policies on --precision_recipes.")
flags.DEFINE_list("precision_recipes", ["mnist_mlp", "mnist_cnn"], "Recipes for --precision.")
flags.DEFINE_list("seeds", [], "Instead of the foundation benchmark: train --seed_recipes "
                  "once per seed and report accuracy over seeds.")
flags.DEFINE_list("seed_recipes", ["mnist_cnn", "mnist_mlp"], "Recipes for --seeds.")
flags.DEFINE_list("gan", [], "Instead of the foundation benchmark: train these GAN recipes "
                  "(reference first, contender second) for --gan_minutes each, side by side.")
flags.DEFINE_float("gan_minutes", 10.0, "Wall-clock training budget of each --gan recipe.")
flags.DEFINE_bool("gan_parallel", False, "Train the --gan recipes at the same time, one CPU "
                  "core each, instead of one after the other with the whole machine.")
flags.DEFINE_string("detection", None, "Instead of the foundation benchmark: train, export "
                    "and time this detector recipe.")
flags.DEFINE_multi_string("detection_set", [], "Config overrides of the --detection recipe, "
                          "as scripts/train.py's --set (e.g. dataset=coco:DIR).")
flags.DEFINE_string("serving", None, "Instead of the foundation benchmark: load-test "
                    "scripts/serve.py serving this model directory (e.g. saved_models/mnist_cnn) "
                    "with batching off and on.")
flags.DEFINE_integer("serving_requests", 3000, "Requests per --serving row at most.")
flags.DEFINE_float("serving_seconds", 60.0, "Seconds per --serving row at most.")
flags.DEFINE_integer("precision_epochs", None, "Epochs each recipe trains under each policy "
                     "for the accuracy column of --precision (default: the recipe's own).")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  command = "python scripts/benchmark.py " + " ".join(sys.argv[1:])
  if FLAGS.exported:
    results = {path: benchmarks.export_rows(path, data_dir=FLAGS.data_dir)
               for path in FLAGS.exported}
    body = benchmarks.export_report(results, command=command.strip())
    benchmarks.write_section(FLAGS.output, "Exported models (export)", body)
    print(body)
    return
  if FLAGS.serving:
    row = benchmarks.serving_benchmark(FLAGS.serving, manual_dir=FLAGS.manual_dir,
                                       requests=FLAGS.serving_requests,
                                       max_seconds=FLAGS.serving_seconds)
    body = benchmarks.serving_report(row, command=command.strip())
    benchmarks.write_section(FLAGS.output, "Serving (serving)", body)
    print(body)
    return
  workdir = FLAGS.workdir or tempfile.mkdtemp(prefix="zoo_bench_")
  if FLAGS.detection:
    row = benchmarks.detection_benchmark(FLAGS.detection, workdir, data_dir=FLAGS.data_dir,
                                         manual_dir=FLAGS.manual_dir,
                                         overrides=FLAGS.detection_set)
    with open(os.path.join(workdir, "detection.json"), "w") as f:
      json.dump(row, f, indent=2)
    body = benchmarks.detection_report(row, command=command.strip())
    section = ("Detection (detection)" if FLAGS.detection == "detector_mnist"
               else f"Detection, {FLAGS.detection} (detection_{FLAGS.detection})")
    benchmarks.write_section(FLAGS.output, section, body)
    print(body)
    return
  if FLAGS.gan:
    rows = benchmarks.gan_side_by_side(FLAGS.gan, workdir, budget_seconds=60 * FLAGS.gan_minutes,
                                       data_dir=FLAGS.data_dir, manual_dir=FLAGS.manual_dir,
                                       parallel=FLAGS.gan_parallel)
    with open(os.path.join(workdir, "gan.json"), "w") as f:
      json.dump(rows, f, indent=2)
    body = benchmarks.gan_report(rows, command=command.strip(), reference=FLAGS.gan[0],
                                 contender=FLAGS.gan[-1])
    benchmarks.write_section(FLAGS.output, "DCGAN vs the TensorFlow tutorial (gan)", body)
    print(body)
    return
  if FLAGS.seeds:
    common = dict(data_dir=FLAGS.data_dir, manual_dir=FLAGS.manual_dir,
                  target=FLAGS.target_accuracy)
    rows = [benchmarks.run_recipe(name, workdir, seed=int(seed), **common)
            for name in FLAGS.seed_recipes for seed in FLAGS.seeds]
    short = [benchmarks.run_recipe(name, workdir, train_epochs=1, **common)
             for name in FLAGS.seed_recipes]
    # Last: op determinism stays on for the rest of the process.
    det = [benchmarks.run_recipe(FLAGS.seed_recipes[0], workdir, seed=int(FLAGS.seeds[0]),
                                 deterministic=True, **common)]
    with open(os.path.join(workdir, "seeds.json"), "w") as f:
      json.dump({"rows": rows, "short": short, "deterministic": det}, f, indent=2)
    body = benchmarks.seeds_report(rows, short, det, command=command.strip(),
                                   floors=benchmarks.ACCURACY_FLOORS)
    benchmarks.write_section(FLAGS.output, "Accuracy over seeds (seeds)", body)
    print(body)
    return
  if FLAGS.precision:
    policies = benchmarks.PRECISION_POLICIES
    step_rates = {(name, policy): rates for name in FLAGS.precision_recipes
                  for policy, rates in benchmarks.train_step_images_per_second(
                      name, data_dir=FLAGS.data_dir, policies=policies).items()}
    rows = [benchmarks.run_recipe(name, workdir, data_dir=FLAGS.data_dir,
                                  manual_dir=FLAGS.manual_dir, target=FLAGS.target_accuracy,
                                  train_epochs=FLAGS.precision_epochs, mixed_precision=policy)
            for name in FLAGS.precision_recipes for policy in policies]
    with open(os.path.join(workdir, "precision.json"), "w") as f:
      json.dump({"step_rates": {f"{k[0]} {k[1]}": v for k, v in step_rates.items()},
                 "rows": rows}, f, indent=2)
    body = benchmarks.precision_report(step_rates, rows, command=command.strip())
    benchmarks.write_section(FLAGS.output, "Precision policies on this CPU (precision)", body)
    print(body)
    return
  rows = [benchmarks.run_recipe(name, workdir, data_dir=FLAGS.data_dir,
                                manual_dir=FLAGS.manual_dir, target=FLAGS.target_accuracy)
          for name in FLAGS.recipes]
  contender = FLAGS.contender
  if FLAGS.contender_epochs:
    rows.append(benchmarks.run_recipe(
        FLAGS.contender, os.path.join(workdir, "budget"), data_dir=FLAGS.data_dir,
        manual_dir=FLAGS.manual_dir, target=FLAGS.target_accuracy,
        train_epochs=FLAGS.contender_epochs))
    contender = rows[-1]["label"]
  pipeline = {name: benchmarks.pipeline_images_per_second(name, data_dir=FLAGS.data_dir)
              for name in FLAGS.recipes}
  xla = {name: benchmarks.train_step_images_per_second(name, data_dir=FLAGS.data_dir)["float32"]
         for name in FLAGS.recipes}
  with open(os.path.join(workdir, "benchmark.json"), "w") as f:
    json.dump({"rows": rows, "pipeline": pipeline, "xla": xla}, f, indent=2)
  body = benchmarks.foundation_report(rows, pipeline, xla, command=command.strip(),
                                      target=FLAGS.target_accuracy,
                                      reference="keras_example_cnn", contender=contender)
  benchmarks.write_section(FLAGS.output, "Recipes vs the keras-io example (foundation)", body)
  print(body)


if __name__ == "__main__":
  cli.run(main)
