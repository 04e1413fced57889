"""TensorBoard, started without TensorFlow's start-up lines.

The same command as `zoo-tensorboard` from an installed zoo: see zoo/commands/tensorboard.py.
"""

from zoo.commands import tensorboard

if __name__ == "__main__":
  tensorboard.run()
