"""Evaluates a run directory or an exported model with its task's metrics, as JSON.

The same command as `zoo-evaluate` from an installed zoo: see zoo/commands/evaluate.py.
"""

from zoo.commands import evaluate

if __name__ == "__main__":
  evaluate.run()
