"""Convolutional classifiers for small images (MNIST-sized)."""

import keras

from zoo.models import common


def cnn(*, input_shape=(28, 28, 1), num_classes=10, name="cnn",
        filters=(32, 64), stem_kernel=5, stem_strides=2, dropout=0.0, global_pool=False,
        bn_momentum=0.99):
  """Builds a small BatchNorm convnet, shaped to be cheap on CPUs.

  Stage 0 is a `stem_kernel` x `stem_kernel` convolution with stride `stem_strides`; every
  later stage is a 3x3 convolution. Each stage is Conv-BN-ReLU followed by a 2x2 max-pool,
  except the last; then flatten (or global average pool), dropout and the classifier.
  On MNIST the strided stem keeps the 28x28 resolution out of every later layer, which
  is what makes this net 2-3x faster per image than the keras-io example convnet on CPU.

  Args:
    input_shape: (height, width, channels) of the input images, float in [0, 1].
    num_classes: number of output classes.
    name: model name.
    filters: number of filters of each stage.
    stem_kernel: kernel size of the first convolution.
    stem_strides: stride of the first convolution.
    dropout: dropout rate before the classifier.
    global_pool: global average pool before the classifier; flatten if False.
    bn_momentum: momentum of the BatchNorm moving statistics; lower values track the
      fast-changing weights of short, high-learning-rate schedules more closely.

  Returns:
    A `keras.Model` mapping images to float32 class probabilities.
  """
  common.check_builder_args(input_shape, num_classes)
  common.check_rate("dropout", dropout)
  common.check_positive_ints("filters", filters)
  inputs = keras.Input(shape=tuple(input_shape), name="image")
  x = inputs
  for i, f in enumerate(filters):
    kernel, strides = (stem_kernel, stem_strides) if i == 0 else (3, 1)
    x = keras.layers.Conv2D(f, kernel, strides=strides, padding="same", use_bias=False,
                            name=f"conv_{i}")(x)
    x = keras.layers.BatchNormalization(momentum=bn_momentum, name=f"bn_{i}")(x)
    x = keras.layers.ReLU()(x)
    if i < len(filters) - 1:
      x = keras.layers.MaxPooling2D(2)(x)
  x = keras.layers.GlobalAveragePooling2D()(x) if global_pool else keras.layers.Flatten()(x)
  if dropout:
    x = keras.layers.Dropout(dropout)(x)
  return keras.Model(inputs, common.classifier_head(x, num_classes), name=name)


def keras_example_cnn(*, input_shape=(28, 28, 1), num_classes=10, name="keras_example_cnn"):
  """The reference convnet of the keras-io "Simple MNIST convnet" example.

  Conv32-Pool-Conv64-Pool-Flatten-Dropout(0.5)-Dense. Kept as the baseline that
  `scripts/benchmark.py` measures the zoo recipes against.
  """
  common.check_builder_args(input_shape, num_classes)
  inputs = keras.Input(shape=tuple(input_shape), name="image")
  x = keras.layers.Conv2D(32, 3, activation="relu")(inputs)
  x = keras.layers.MaxPooling2D(2)(x)
  x = keras.layers.Conv2D(64, 3, activation="relu")(x)
  x = keras.layers.MaxPooling2D(2)(x)
  x = keras.layers.Flatten()(x)
  x = keras.layers.Dropout(0.5)(x)
  return keras.Model(inputs, common.classifier_head(x, num_classes), name=name)

