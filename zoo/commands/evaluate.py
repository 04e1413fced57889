r"""Evaluates a run directory or an exported model with its task's metrics, as JSON.

  zoo-evaluate --model_dir=runs/cnn --split=test \
      --manual_dir=../shared/data/mnist
  zoo-evaluate --export=saved_models/dcgan_mnist --manual_dir=../shared/data/mnist

Classifiers: accuracy (and loss for a run). Generators: FID in the zoo classifier's
feature space, class coverage, mean confidence, requested-digit agreement (zoo.quality).
Detectors: COCO mAP@[.5:.95], mAP@.5, mAP@.75 and AP per class (pycocotools).
A run's metrics are also written to <model_dir>/eval_<split>.json.
"""

from zoo import cli  # First: quiets TensorFlow's start-up.

import json

from absl import flags

from zoo import evaluate
from zoo import flags as zoo_flags

flags.DEFINE_string("model_dir", None, "Run directory written by scripts/train.py.")
flags.DEFINE_string("export", None, "Or an exported model: a model or version directory, "
                    "or a .tflite or .onnx file.")
flags.DEFINE_string("split", None, "TFDS split (default: the run's eval_split).")
flags.mark_flags_as_mutual_exclusive(["model_dir", "export"], required=True)
zoo_flags.define_data_flags()
flags.adopt_module_key_flags(zoo_flags)
FLAGS = flags.FLAGS


def main(argv):
  cli.no_arguments(argv)
  run = evaluate.evaluate_run if FLAGS.model_dir else evaluate.evaluate_export
  metrics = run(FLAGS.model_dir or FLAGS.export, split=FLAGS.split, data_dir=FLAGS.data_dir,
                manual_dir=FLAGS.manual_dir, allow_download=FLAGS.download)
  print(json.dumps(metrics, indent=2))


def run() -> None:
  """The `zoo-evaluate` command (and `zoo evaluate`)."""
  cli.run(main)


if __name__ == "__main__":
  run()
