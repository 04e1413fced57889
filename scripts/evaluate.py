"""Evaluates a run directory on a split and prints the metrics as JSON.

  python scripts/evaluate.py --model_dir=runs/cnn --split=test \
      --manual_dir=../shared/data/mnist
"""

from zoo import cli  # First: quiets TensorFlow's start-up.

import json
import sys

from absl import app, flags

from zoo import data, evaluate
from zoo import flags as zoo_flags

flags.DEFINE_string("model_dir", None, "Run directory written by scripts/train.py.")
flags.DEFINE_string("split", None, "TFDS split (default: the run's eval_split).")
flags.mark_flag_as_required("model_dir")
zoo_flags.define_data_flags()
flags.adopt_module_key_flags(zoo_flags)
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  try:
    metrics = evaluate.evaluate_run(FLAGS.model_dir, split=FLAGS.split,
                                    data_dir=FLAGS.data_dir, manual_dir=FLAGS.manual_dir,
                                    allow_download=FLAGS.download)
  except (FileNotFoundError, data.DatasetNotAvailableError) as e:
    sys.exit(f"error: {e}")
  print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
  cli.run(main)
