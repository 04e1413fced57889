"""Multi-layer perceptron for small images (MNIST-sized)."""

import keras

from zoo.models import common


def mlp(*, input_shape=(28, 28, 1), num_classes=10, name="mlp",
        hidden_units=(1024, 1024), dropout=0.2, batch_norm=True):
  """Builds an MLP classifier: Flatten, then [Dense, (BatchNorm), ReLU, Dropout] per layer.

  Args:
    input_shape: (height, width, channels) of the input images, float in [0, 1].
    num_classes: number of output classes.
    name: model name.
    hidden_units: width of each hidden layer.
    dropout: dropout rate after each hidden layer.
    batch_norm: add BatchNormalization before each ReLU.

  Returns:
    A `keras.Model` mapping images to float32 class probabilities.
  """
  common.check_builder_args(input_shape, num_classes)
  common.check_rate("dropout", dropout)
  common.check_positive_ints("hidden_units", hidden_units)
  inputs = keras.Input(shape=tuple(input_shape), name="image")
  x = keras.layers.Flatten()(inputs)
  for i, units in enumerate(hidden_units):
    x = keras.layers.Dense(units, use_bias=not batch_norm, name=f"dense_{i}")(x)
    if batch_norm:
      x = keras.layers.BatchNormalization(name=f"bn_{i}")(x)
    x = keras.layers.ReLU()(x)
    if dropout:
      x = keras.layers.Dropout(dropout)(x)
  return keras.Model(inputs, common.classifier_head(x, num_classes), name=name)

