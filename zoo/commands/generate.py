r"""Writes a PNG grid of digits made by an exported generator, and prints what it did as JSON.

  zoo-generate --model=saved_models/dcgan_mnist --output=digits.png
  zoo-generate --model=saved_models/cdcgan_mnist --digit=7 --count=10 \
      --output=sevens.png                   # ten 7s
  zoo-generate --model=saved_models/cdcgan_mnist --output=all.png
                                            # conditional, no --digit: one row per digit

Image i comes from seed `--seed + i` (the model's `generate` signature): the same command
gives the same PNG on every run. Works with the SavedModel, a .tflite or a .onnx file.
"""

from zoo import cli  # First: quiets TensorFlow's start-up.

import json

import numpy as np
import tensorflow as tf
from absl import flags

import zoo
from zoo import drawing, errors
from zoo.tasks import generation

flags.DEFINE_string("model", None, "Exported generator: saved_models/<name> (newest version), "
                    "a version directory, or a .tflite or .onnx file.")
flags.DEFINE_string("output", "generated.png", "PNG file to write.")
flags.DEFINE_integer("count", None, "Images to make (default: 64; conditional without "
                     "--digit: 10 per digit).", lower_bound=1)
flags.DEFINE_integer("digit", None, "Conditional generators: the class to make.")
flags.DEFINE_integer("seed", 0, "Seed of the first image; image i uses seed + i.")
flags.DEFINE_integer("columns", 10, "Images per row of the grid.", lower_bound=1)
flags.mark_flag_as_required("model")
FLAGS = flags.FLAGS


def main(argv):
  cli.no_arguments(argv)
  generator = zoo.load(FLAGS.model)
  if not isinstance(generator, generation.Generator):
    raise errors.InvalidValueError(
        f"Invalid value for `--model`: {FLAGS.model!r} is a {generator.card.get('task')} "
        "model, not a generator; see scripts/predict.py for classifiers and detectors.")
  labels = None
  if generator.conditional:
    if FLAGS.digit is None:
      count = FLAGS.count or 10 * len(generator.class_names)
      labels = np.arange(count) * len(generator.class_names) // count
    else:
      labels = np.full(FLAGS.count or 10, FLAGS.digit)
  elif FLAGS.digit is not None:
    raise errors.UsageError(f"Invalid value for `--digit`: {FLAGS.model!r} is an "
                            "unconditional generator; it cannot be asked for a class.")
  count = len(labels) if labels is not None else (FLAGS.count or 64)
  seeds = FLAGS.seed + np.arange(count)
  images = generator.generate_seeds(seeds, labels)
  rows = -(-count // FLAGS.columns)
  grid = drawing.image_grid(images, rows)
  tf.io.write_file(FLAGS.output, tf.io.encode_png(grid))
  print(json.dumps({"model": FLAGS.model, "loaded": generator.source, "output": FLAGS.output,
                    "count": count, "seeds": [int(s) for s in seeds],
                    "labels": None if labels is None else
                    [generator.class_names[i] for i in labels]}, indent=2))


def run() -> None:
  """The `zoo-generate` command (and `zoo generate`)."""
  cli.run(main)


if __name__ == "__main__":
  run()
