"""Measures the foundation recipes against the keras-io example convnet; writes BENCHMARKS.md.

  python scripts/benchmark.py --manual_dir=../shared/data/mnist

Trains `keras_example_cnn` (the reference), `mnist_cnn` and `mnist_mlp` from scratch on the
real MNIST, one after the other in this process, then times the input pipeline alone and
each model's training step with and without XLA.
About 15-20 minutes on a 2-core CPU.
"""

import json
import os
import sys
import tempfile

from absl import app, flags

from zoo import benchmarks
from zoo import flags as zoo_flags

zoo_flags.define_data_flags()
flags.DEFINE_list("recipes", ["keras_example_cnn", "mnist_cnn", "mnist_mlp"],
                  "Recipes to train, in order.")
flags.DEFINE_float("target_accuracy", 0.99, "Accuracy whose time-to-reach is compared.")
flags.DEFINE_string("output", "BENCHMARKS.md", "Markdown file to update.")
flags.DEFINE_string("workdir", None, "Where runs go (default: a temporary directory).")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  workdir = FLAGS.workdir or tempfile.mkdtemp(prefix="zoo_bench_")
  rows = [benchmarks.run_recipe(name, workdir, data_dir=FLAGS.data_dir,
                                manual_dir=FLAGS.manual_dir, target=FLAGS.target_accuracy)
          for name in FLAGS.recipes]
  pipeline = {name: benchmarks.pipeline_images_per_second(name, data_dir=FLAGS.data_dir)
              for name in FLAGS.recipes}
  xla = {name: benchmarks.xla_images_per_second(name, data_dir=FLAGS.data_dir)
         for name in FLAGS.recipes}
  with open(os.path.join(workdir, "benchmark.json"), "w") as f:
    json.dump({"rows": rows, "pipeline": pipeline, "xla": xla}, f, indent=2)
  command = "python scripts/benchmark.py " + " ".join(sys.argv[1:])
  body = benchmarks.foundation_report(rows, pipeline, xla, command=command.strip(),
                                      target=FLAGS.target_accuracy,
                                      reference="keras_example_cnn", contender="mnist_cnn")
  benchmarks.write_section(FLAGS.output, "Recipes vs the keras-io example (foundation)", body)
  print(body)


if __name__ == "__main__":
  app.run(main)
