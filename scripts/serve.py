"""Serves exported models over TensorFlow Serving's REST and gRPC APIs, with a browser demo.

The same command as `zoo-serve` from an installed zoo: see zoo/commands/serve.py.
"""

from zoo.commands import serve

if __name__ == "__main__":
  serve.run()
