"""Evaluates a run directory on a split and prints the metrics as JSON.

  python scripts/evaluate.py --model_dir=runs/cnn --split=test \
      --manual_dir=../shared/data/mnist
"""

import json

from absl import app, flags

from zoo import evaluate
from zoo import flags as zoo_flags

flags.DEFINE_string("model_dir", None, "Run directory written by scripts/train.py.")
flags.DEFINE_string("split", None, "TFDS split (default: the run's eval_split).")
flags.mark_flag_as_required("model_dir")
zoo_flags.define_data_flags()
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  metrics = evaluate.evaluate_run(FLAGS.model_dir, split=FLAGS.split, data_dir=FLAGS.data_dir,
                                  manual_dir=FLAGS.manual_dir, allow_download=FLAGS.download)
  print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
  app.run(main)
