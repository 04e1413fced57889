"""TensorBoard, started without TensorFlow's start-up lines.

  zoo-tensorboard --logdir runs/    # or python scripts/run_tensorboard.py; then open http://localhost:6006/

The same command as `tensorboard --logdir runs/` (every TensorBoard flag passes through);
TensorBoard imports TensorFlow, whose loading prints a block of oneDNN, CPU-feature and
CUDA-probe lines a user can do nothing about: importing `zoo.cli` first filters them, as
for every other script.
"""

from zoo import cli  # noqa: F401  First: imports TensorFlow with its start-up lines filtered.

import sys

from tensorboard import main as tensorboard_main


def run() -> None:
  """The `zoo-tensorboard` command (and `python scripts/run_tensorboard.py`)."""
  # `zoo.cli` was imported for its quieting only; TensorBoard parses its own flags.
  sys.exit(tensorboard_main.run_main())


if __name__ == "__main__":
  run()
