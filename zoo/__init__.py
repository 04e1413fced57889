"""zoo: Keras 3 / TensorFlow recipes you can train, watch, export and ship.

A recipe is named (`mnist_mlp`, `mnist_cnn`, ...); `zoo.registry` maps the name to a
config and a model builder, and `zoo.train.train_and_evaluate` runs it.
"""

__version__ = "0.1.0"


def load(path: str):
  """Loads an exported classifier (SavedModel directory or .tflite file); see zoo.predictor."""
  from zoo import predictor
  return predictor.load(path)
