"""Exports a trained run for apps: SavedModel (TF Serving layout) + TFLite, checked.

The same command as `zoo-export` from an installed zoo: see zoo/commands/export.py.
"""

from zoo.commands import export

if __name__ == "__main__":
  export.run()
