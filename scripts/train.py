"""Trains a recipe by name.

The same command as `zoo-train` from an installed zoo: see zoo/commands/train.py.
"""

from zoo.commands import train

if __name__ == "__main__":
  train.run()
