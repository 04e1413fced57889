"""zoo: Keras 3 / TensorFlow recipes you can train, watch, export and ship.

A recipe is named (`mnist_mlp`, `mnist_cnn`, `dcgan_mnist`, ...); `zoo.registry` maps the
name to a config and a model builder, the config names its task (`zoo.tasks`), and
`zoo.train.train_and_evaluate` runs it.
"""

__version__ = "0.1.0"


def load(path: str):
  """Loads an exported model (SavedModel directory or .tflite file) as its task's predictor
  (a classifier or a generator); see zoo.predictor."""
  from zoo import predictor
  return predictor.load(path)


def connect(url: str, name: str, **kwargs):
  """A model served over TensorFlow Serving's REST API (`scripts/serve.py` or TensorFlow
  Serving); with `card=` the same task predictor `load` returns. See zoo.serving.client."""
  from zoo.serving import client
  return client.connect(url, name, **kwargs)
