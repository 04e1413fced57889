"""Helpers shared by the builders."""

import os

import keras

from zoo import errors


class OfflineWeightsError(errors.ZooError, RuntimeError):
  """Pretrained weights were asked for, are not cached, and the zoo never downloads."""


def mobilenet_v2_weights(weights, size: int, alpha: float = 1.0, knob: str = "weights"):
  """`weights` for `keras.applications.MobileNetV2(include_top=False)` at `size` px, checked:
  None (from scratch) or `imagenet`, which must already be in Keras's cache
  (`$KERAS_HOME/models`, default `~/.keras/models`): the zoo never downloads.

  Raises:
    InvalidValueError: `weights` is neither None nor `imagenet`.
    OfflineWeightsError: `imagenet` was asked for and is not cached (at once, offline or not).
  """
  if weights not in (None, "imagenet"):
    raise errors.InvalidValueError(
        f"Invalid value for `{knob}`: expected None or 'imagenet'. Received: {knob}={weights!r}")
  if weights == "imagenet":
    rows = min((96, 128, 160, 192, 224), key=lambda r: abs(r - size))
    # Keras Applications' own file name (`str(float(alpha))`: 1.0, 0.35).
    name = f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{rows}_no_top.h5"
    cache = os.path.join(os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras")),
                         "models", name)
    if not os.path.exists(cache):
      raise OfflineWeightsError(
          f"ImageNet weights for MobileNetV2 are not in Keras's cache ({cache}), and this zoo "
          "never downloads. On a machine with internet run `python -c \"import keras; "
          f"keras.applications.MobileNetV2(weights='imagenet', alpha={alpha:g}, "
          f"include_top=False, input_shape=({size}, {size}, 3))\"` and copy the file there, "
          f"or train from scratch with {knob}=None (the default).")
  return weights


def check_image_shape(shape, name="input_shape"):
  """Validates an image shape argument: (height, width, channels) of positive integers."""
  if (not isinstance(shape, (tuple, list)) or len(shape) != 3
      or not all(isinstance(d, int) and d > 0 for d in shape)):
    raise errors.InvalidValueError(
        f"Invalid value for `{name}`: expected (height, width, channels) "
        f"of positive integers. Received: {name}={shape!r}")


def check_builder_args(input_shape, num_classes):
  """Validates the arguments every classifier builder shares."""
  check_image_shape(input_shape)
  if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
    raise errors.InvalidValueError("Invalid value for `num_classes`: expected an integer >= 2. "
                                   f"Received: num_classes={num_classes!r}")


def check_rate(name, value):
  if not 0.0 <= value < 1.0:
    raise errors.InvalidValueError(f"Invalid value for `{name}`: expected 0 <= {name} < 1. "
                                   f"Received: {name}={value!r}")


def check_positive_ints(name, values):
  """Validates a non-empty sequence of positive integers (layer widths, filter counts)."""
  if not values or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                           for v in values):
    raise errors.InvalidValueError(f"Invalid value for `{name}`: expected a non-empty sequence of "
                                   f"positive integers. Received: {name}={values!r}")


def classifier_head(x, num_classes):
  """Dense logits and softmax, both float32 under any policy: the last matmul and the
  exponentials are where float16 overflows or loses the small probabilities, and the
  layer is too small for its precision to cost anything."""
  x = keras.layers.Dense(num_classes, dtype="float32", name="logits")(x)
  return keras.layers.Activation("softmax", dtype="float32", name="probabilities")(x)
