r"""Classifies (or detects objects in) image files with an exported model; prints JSON.

  zoo-predict --model=saved_models/mnist_cnn digit.png other.jpg
  zoo-predict --model=mnist_cnn --top_k=3 digit.png
  zoo-predict --model=saved_models/mnist_cnn/3/model_int8.tflite digit.png
  zoo-predict --model=saved_models/detector_mnist canvas.png \
      --output_dir=predictions

Detectors: each file's boxes with labels and scores (>= --min_score) in the JSON, and
drawn on the image: <output_dir>/<name>_detections.png beside <name>_detections.json.

Classifiers: each file's answer (`class`, `label`, `probability`) and its `top_k` likeliest
classes with their probabilities, likeliest first (--top_k; without it 5, or every class of
a model with fewer).

The JSON says which version and file were loaded. A dark digit on light paper is inverted
to MNIST's light-on-dark first (each result says `inverted`; --noauto_invert turns it off),
and for the MNIST classifiers a digit anywhere on the page is cropped to its ink and centred
as MNIST's digits are (`centered`; --nocenter_digits resizes the whole file instead). An
answer whose probability is below the model card's `low_confidence_below` says
`"low_confidence": true`.
A file that is missing or not an image gets an "error" entry (and a line on stderr); the
others are still classified. Exit status 1 if any file failed.
"""

from zoo import cli  # First: quiets TensorFlow's start-up.

import json
import sys

from absl import flags

import zoo
from zoo import errors

flags.DEFINE_string("model", None, "Exported model: saved_models/<name> (newest version), a "
                    "version directory, or a .tflite or .onnx file.")
flags.DEFINE_bool("auto_invert", True, "Invert images whose border is light (a dark digit "
                  "on paper) to the dataset's light-on-dark before classifying.")
flags.DEFINE_bool("center_digits", True, "Models whose card says photo_preprocessing="
                  "mnist_digit: crop each file to its ink and centre it as MNIST's digits are; "
                  "--nocenter_digits resizes the whole file.")
flags.DEFINE_string("output_dir", "predictions", "Detectors: where the drawn PNG and the "
                    "JSON of each file are written.")
flags.DEFINE_integer("top_k", None, "Classifiers: how many of the likeliest classes each "
                     "file lists, from 1 to the model's number of classes (default: 5, or "
                     "every class if fewer).")
flags.DEFINE_float("min_score", 0.3, "Detectors: the lowest score reported and drawn.")
flags.mark_flag_as_required("model")
FLAGS = flags.FLAGS


def main(argv):
  files = argv[1:]
  if not files:
    raise errors.UsageError("Expected one or more image files after the flags.")
  front = zoo.load(FLAGS.model)
  if FLAGS.top_k is not None:  # A flag out of range is a usage error (exit 2), before work.
    if front.card.get("task") != "classification":
      raise errors.UsageError(f"--top_k is for classifiers; {FLAGS.model!r} is a "
                              f"{front.card.get('task')} model.")
    try:
      front.check_top_k(FLAGS.top_k, what="--top_k")
    except errors.InvalidValueError as e:
      raise errors.UsageError(str(e)) from None
  # The task's front says what a file gets: a classification, or boxes drawn and saved.
  results = front.run_files(files, {"auto_invert": FLAGS.auto_invert,
                                    "center_digits": FLAGS.center_digits,
                                    "min_score": FLAGS.min_score,
                                    "top_k": FLAGS.top_k,
                                    "output_dir": FLAGS.output_dir})
  print(json.dumps({"model": FLAGS.model, "loaded": front.source, "kind": front.kind,
                    "results": results}, indent=2))
  failed = [r for r in results if "error" in r]
  for r in failed:  # Also on stderr, where a shell user looks for what went wrong.
    print(f"error: {r['file']}: {r['error']}", file=sys.stderr)
  if failed:
    sys.exit(1)


def run() -> None:
  """The `zoo-predict` command (and `zoo predict`)."""
  cli.run(main)


if __name__ == "__main__":
  run()
