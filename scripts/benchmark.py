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

  python scripts/benchmark.py --step_time=retinanet_efficientnet \
      --step_time_set=model_kwargs.image_size=512

seconds per training step of a detector recipe with its backbone frozen, frozen up to each
level (`freeze_backbone_to_level`) and training whole, on random data. About 3 minutes.

  python scripts/benchmark.py --serving=saved_models/mnist_cnn --manual_dir=../shared/data/mnist

load-tests scripts/serve.py on loopback: requests/s and p50/p99 latency of single-image
requests from 1 and 16 clients, batching off and on, beside the in-process SavedModel rate
at batch 1 and 16. About 5 minutes.

  python scripts/benchmark.py --protocols=saved_models/mnist_cnn --manual_dir=../shared/data/mnist

the same over both of the server's APIs: REST (Debian's wrk) and gRPC (nghttp2's h2load,
sudo apt-get install nghttp2-client) at 1 and 16 clients, batching off and on, with the client and server CPU per 1,000
requests; the detector on a 640x480 canvas per request; and requests over both while a new
version is copied in every 3 s. About 8 minutes.

  python scripts/benchmark.py --shortrun=3 --manual_dir=../shared/data/mnist

times what a user waits for: the whole `train.py --model=mnist_cnn --epochs=2` command,
against the keras-io convnet recipe's command until it first logs 99.0 % validation
accuracy, three times each. About 8 minutes.

  python scripts/benchmark.py --folder=/tmp/digit_photos --manual_dir=../shared/data/mnist \
      --folder_recipes=keras_example_cnn,mnist_mlp,mnist_cnn,mnist_cnn@centred,image_classifier \
      --folder_set=mnist_cnn@centred:folder_resize=mnist_digit \
      --folder_set=image_classifier:task_kwargs.flip=False

trains every classification recipe (the keras-io convnet among them) from scratch on one
folder of labelled images, writing it first when it does not exist (photo-like MNIST digits,
as scripts/make_image_folder.py does). About 15 minutes.

  python scripts/benchmark.py --folder=../shared/data/hymenoptera \
      --folder_recipes=image_classifier,image_classifier@scratch \
      --folder_set=image_classifier@scratch:init_from=none \
      --folder_section="Starting from trained weights: ants and bees"

the photo classifier fine-tuned from ImageNet (its default start) beside the same recipe
from scratch, on real photos, in one run. About 15 minutes.

  python scripts/benchmark.py --family=../shared/data/hymenoptera

trains `image_classifier` once per backbone of the family (`--set=backbone=NAME`; from
scratch where it has no ImageNet weights), exports each (SavedModel, int8 TFLite, ONNX) and
reports accuracy, training time, file sizes and one-photo latencies. About 40 minutes.

  python scripts/benchmark.py --zeroshot=../shared/data/hymenoptera

reads ants and bees with the family's ImageNet networks as they are (no training), each photo
scored among ImageNet's 1,000 classes as "ant" or "bee": top-1 and top-5, the photo fitting
chosen on train/ and val/ read once. About 5 minutes.

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

import sys
import tempfile

from absl import flags

# One module per BENCHMARKS.md section, in scripts/benchmarks/ beside this script.
from benchmarks import (detection, exported, family, folder, foundation, gan, precision,
                        protocols, report, seeds, serving, shortrun, steptime, zeroshot)
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
flags.DEFINE_string("seeds_section", "Accuracy over seeds (seeds)", "BENCHMARKS.md section "
                    "the --seeds tables go to.")
flags.DEFINE_list("gan", [], "Instead of the foundation benchmark: train these GAN recipes "
                  "(reference first, contender second) for --gan_minutes each, side by side.")
flags.DEFINE_float("gan_minutes", 10.0, "Wall-clock training budget of each --gan recipe.")
flags.DEFINE_bool("gan_parallel", False, "Train the --gan recipes at the same time, one CPU "
                  "core each, instead of one after the other with the whole machine.")
flags.DEFINE_string("detection", None, "Instead of the foundation benchmark: train, export "
                    "and time this detector recipe.")
flags.DEFINE_multi_string("detection_set", [], "Config overrides of the --detection recipe, "
                          "as scripts/train.py's --set (e.g. dataset=coco:DIR).")
flags.DEFINE_string("detection_report_split", "", "With --detection: after training (per-epoch "
                    "validation and final metrics on the recipe's eval_split, where choices "
                    "are made), score the run once on this split too, e.g. `test`.")
flags.DEFINE_string("detection_section", None, "BENCHMARKS.md section of the --detection "
                    "table (default: 'Detection, <recipe> (detection_<recipe>)'), e.g. a "
                    "second one for the recipe with --detection_set=init_from=none.")
flags.DEFINE_string("step_time", None, "Instead of the foundation benchmark: seconds per "
                    "training step of this detector recipe by what is frozen.")
flags.DEFINE_multi_string("step_time_set", [], "Config overrides of the --step_time recipe, "
                          "as scripts/train.py's --set (e.g. model_kwargs.image_size=512).")
flags.DEFINE_string("step_time_section", "Detector training steps by what is frozen",
                    "BENCHMARKS.md section the --step_time table goes to.")
flags.DEFINE_string("serving", None, "Instead of the foundation benchmark: load-test "
                    "scripts/serve.py serving this model directory (e.g. saved_models/mnist_cnn) "
                    "with batching off and on.")
flags.DEFINE_string("protocols", None, "Instead of the foundation benchmark: load-test "
                    "scripts/serve.py serving this model directory over REST and gRPC, "
                    "batching off and on, plus --protocols_detector on a photo-sized input "
                    "and requests while versions come and go.")
flags.DEFINE_string("protocols_detector", "saved_models/detector_mnist", "Detector model "
                    "directory of --protocols' photo-sized input.")
flags.DEFINE_integer("shortrun", 0, "Instead of the foundation benchmark: time the whole "
                     "`train.py --model=mnist_cnn --epochs=2` command this many times against "
                     "the keras-io convnet script, run whole and to --target_accuracy.")
flags.DEFINE_integer("serving_requests", 3000, "Requests per --serving row at most.")
flags.DEFINE_float("serving_seconds", 60.0, "Seconds per --serving row at most.")
flags.DEFINE_integer("precision_epochs", None, "Epochs each recipe trains under each policy "
                     "for the accuracy column of --precision (default: the recipe's own).")
flags.DEFINE_string("folder", None, "Instead of the foundation benchmark: train every "
                    "--folder_recipes recipe on this folder of labelled images (built from "
                    "--manual_dir's MNIST as scripts/make_image_folder.py does if missing).")
flags.DEFINE_list("folder_recipes", ["keras_example_cnn", "mnist_mlp", "mnist_cnn",
                                     "image_classifier"], "Recipes for --folder, in order; "
                  "recipe@label runs a recipe again under its own --folder_set overrides.")
flags.DEFINE_string("folder_make", None, "With --folder that does not exist: write it from "
                    "--manual_dir's MNIST as `words[:N]` (the first N training digits under "
                    "their English names) or `turned[:N]` (N/10 of each digit turned a quarter "
                    "turn, ten new classes) instead of photo-like digits.")
flags.DEFINE_bool("folder_holdout", False, "With --folder in the split layout: train on "
                  "80 % of its train/ and measure on the other 20 % (stratified), never "
                  "reading its valid split: where schedules are chosen.")
flags.DEFINE_integer("folder_shrink", None, "With --folder: first shrink a copy of every "
                     "photo to this shorter side in pixels (in --workdir), to measure what "
                     "recipes do with photos far smaller than their input.")
flags.DEFINE_string("family", None, "Instead of the foundation benchmark: train, export "
                    "and time image_classifier on this folder once per backbone of the "
                    "family (--family_backbones; --folder_holdout holds out part of train).")
flags.DEFINE_list("family_backbones", None, "Backbones for --family (default: every one in "
                  "zoo.models.backbones).")
flags.DEFINE_multi_string("family_set", [], "field=value overrides of every --family run.")
flags.DEFINE_string("zeroshot", None, "Instead of the foundation benchmark: the family's "
                    "ImageNet networks, untrained, on FOLDER's train/ and val/ photos whose "
                    "classes are ImageNet's (--zeroshot_classes): top-1, top-5.")
flags.DEFINE_list("zeroshot_classes", ["ants:ant", "bees:bee"], "--zeroshot: folder class:"
                  "ImageNet class name (zoo.imagenet) pairs.")
flags.DEFINE_list("zeroshot_backbones", None, "--zeroshot: backbones (default: every one with "
                  "ImageNet weights).")
flags.DEFINE_string("zeroshot_section", "ImageNet classifiers zero-shot: ants and bees",
                    "BENCHMARKS.md section the --zeroshot table goes to.")
flags.DEFINE_string("family_section", None, "BENCHMARKS.md section the --family table goes "
                    "to (default: \"The backbone family: <the folder's name>\").")
flags.DEFINE_string("folder_section", "Your own images (folder)", "BENCHMARKS.md section "
                    "the --folder table goes to (e.g. 'Starting from trained weights: ants "
                    "and bees' for a fine-tuned recipe beside its --init_from=none twin).")
flags.DEFINE_multi_string("folder_set", [], "entry:field=value overrides of one "
                          "--folder_recipes entry, e.g. image_classifier:task_kwargs.flip=False "
                          "or mnist_cnn@centred:folder_resize=mnist_digit.")
FLAGS = flags.FLAGS


# The flag that asks for each section (in this order of precedence); none: foundation.
SECTIONS = (("exported", exported), ("serving", serving), ("protocols", protocols),
            ("folder", folder), ("family", family), ("zeroshot", zeroshot),
            ("shortrun", shortrun), ("detection", detection), ("step_time", steptime),
            ("gan", gan), ("seeds", seeds), ("precision", precision))


def main(argv):
  del argv
  command = ("python scripts/benchmark.py " + " ".join(sys.argv[1:])).strip()
  module = next((m for flag, m in SECTIONS if FLAGS[flag].value), foundation)
  workdir = FLAGS.workdir or tempfile.mkdtemp(prefix="zoo_bench_")
  section, body = module.main(FLAGS, workdir, command)
  report.write_section(FLAGS.output, section, body)
  print(body)


if __name__ == "__main__":
  cli.run(main)
