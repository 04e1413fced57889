"""Classifies (or detects objects in) image files with an exported model; prints JSON.

The same command as `zoo-predict` from an installed zoo: see zoo/commands/predict.py.
"""

from zoo.commands import predict

if __name__ == "__main__":
  predict.run()
