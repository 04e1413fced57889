"""Writes a PNG grid of digits made by an exported generator, and prints what it did as JSON.

The same command as `zoo-generate` from an installed zoo: see zoo/commands/generate.py.
"""

from zoo.commands import generate

if __name__ == "__main__":
  generate.run()
