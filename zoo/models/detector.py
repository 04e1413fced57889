"""RetinaNet-style single-stage detectors: a backbone's feature maps, an optional light FPN,
and class and box subnets shared across pyramid levels (Lin et al., "Focal Loss for Dense
Object Detection", 2017).

The builder is pure: images in, raw head outputs out, `[B, A, 4 + num_classes]` float32
under any policy (per anchor: box deltas for `zoo.boxes.decode_yxyx`, then class logits).
Anchors are not weights: `anchors_yxyx(input_shape, **model_kwargs)` gives the same
anchors from the same knobs, for the data pipeline (targets), evaluation and export
(decoding and NMS, `zoo.boxes.postprocess_yxyx`). The loss is `DetectionLoss` (sigmoid
focal loss for classes, Huber for boxes, float32), passed to `compile`, so `fit()`,
callbacks, strategies and loss scaling work unchanged.

Backbones: `small` (a plain strided convnet for MNIST-scale canvases, the detector's own),
or any of the photo family's (`zoo.models.backbones`: EfficientNet-Lite0/1/2, MobileNetV2),
whose ImageNet weights come through the recipe's `init_from="imagenet"` (`zoo.finetune`).
MobileNetV2 also takes `backbone_weights="imagenet"` from Keras's cache (never downloaded).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from zoo import boxes as zboxes
from zoo import errors
from zoo.models import backbones, common

# Knobs of the anchors, shared by the builder and `anchors_yxyx` (their defaults).
ANCHOR_DEFAULTS = {"min_level": 3, "max_level": 4, "anchor_size_in_strides": 2.0,
                   "anchor_scales": (1.0, 2 ** (1 / 3), 2 ** (2 / 3)),
                   "aspect_ratios": (1.0, 2.0, 3.0)}
SMALL = "small"  # The MNIST canvases' backbone; photo backbones: `zoo.models.backbones`.


OfflineWeightsError = common.OfflineWeightsError  # Where the detector tests look for it.


def anchor_knobs(model_kwargs: dict) -> dict:
  """The anchor knobs of a builder's kwargs, defaults filled in."""
  return {k: model_kwargs.get(k, v) for k, v in ANCHOR_DEFAULTS.items()}


# `model_kwargs.image_size` that `zoo.train` derives from the training boxes
# (`input_size_for`); the run records the number it chose.
AUTO = "auto"
# `auto` never goes below this side: the photo recipes' size before it (raccoons: 0.958).
MIN_AUTO_SIZE = 320


def smallest_anchor(model_kwargs: dict) -> float:
  """Side in pixels of the detector's smallest anchor: its base side (`anchor_size_in_strides`
  strides of the finest level) times its smallest scale."""
  k = anchor_knobs(model_kwargs)
  return k["anchor_size_in_strides"] * 2 ** k["min_level"] * min(k["anchor_scales"])


def input_size_for(box_side_fraction: float, photo_side: int, model_kwargs: dict) -> int:
  """The input side `image_size="auto"` chooses: the smallest multiple of the coarsest
  stride (`2**max_level`) at which the data's median box is as large as the smallest
  anchor (a box smaller than every anchor matches none well), at least `MIN_AUTO_SIZE`,
  but never more than the photos' median longer side (rounded up): enlarging a photo adds
  no detail.

  Args:
    box_side_fraction: the training boxes' median side (square root of width x height) as
      a fraction of their photo's longer side (`zoo.data.detection_input.box_statistics`).
    photo_side: the photos' median longer side, in pixels.
    model_kwargs: the detector's knobs (anchors and levels).
  """
  multiple = 2 ** anchor_knobs(model_kwargs)["max_level"]

  def up(x):
    return int(math.ceil(x / multiple) * multiple)

  wanted = up(smallest_anchor(model_kwargs) / max(box_side_fraction, 1e-6))
  return min(max(up(MIN_AUTO_SIZE), wanted), up(photo_side))


def model_input_size(input_shape, model_kwargs: dict) -> int:
  """Side of the detector's square input: `model_kwargs['image_size']`, else the dataset's
  (square) image size."""
  size = model_kwargs.get("image_size")
  if size == AUTO:
    raise errors.InvalidValueError(
        "Invalid value for `model_kwargs.image_size`: 'auto' is chosen from the training "
        "boxes when a run starts (zoo.train); the builder needs a number of pixels.")
  if size is None:
    height, width = input_shape[0], input_shape[1]
    if height is None or height != width:
      raise errors.InvalidValueError(
          "Invalid value for `model_kwargs.image_size`: the dataset's images are "
          f"{height}x{width} (None: sizes vary); set the detector's square input size, "
          "e.g. --set=model_kwargs.image_size=320.")
    size = height
  return int(size)


def anchors_yxyx(input_shape, **model_kwargs) -> np.ndarray:
  """The anchors of the detector built with these arguments (normalized yxyx, `[A, 4]`)."""
  k = anchor_knobs(model_kwargs)
  return zboxes.anchors_yxyx(model_input_size(input_shape, model_kwargs),
                             min_level=k["min_level"], max_level=k["max_level"],
                             size_in_strides=k["anchor_size_in_strides"],
                             scales=k["anchor_scales"], aspect_ratios=k["aspect_ratios"])


def _conv_bn(x, filters, strides, name):
  x = keras.layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False,
                          name=f"{name}_conv")(x)
  x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
  return keras.layers.ReLU(name=f"{name}_relu")(x)


def small_backbone(inputs, widths: Sequence[int], max_level: int) -> dict:
  """A plain strided convnet: stage `i` (1-based) halves the resolution with a strided
  Conv-BN-ReLU and adds one more; returns `{level: feature map}` for levels 1..max_level."""
  if len(widths) < max_level:
    raise errors.InvalidValueError(
        f"Invalid value for `widths`: the small backbone needs one width per "
        f"level up to max_level={max_level}. Received: widths={widths!r}")
  features, x = {}, inputs
  for level, width in enumerate(widths[:max_level], start=1):
    x = _conv_bn(x, width, 2, f"stage{level}_down")
    if level >= 2:
      x = _conv_bn(x, width, 1, f"stage{level}_conv")
    features[level] = x
  return features


def _head(num_levels_inputs, width, depth, outputs, bias_init, name):
  """A subnet applied to every level with shared weights: `depth` 3x3 conv + ReLU, then a
  3x3 conv to `outputs` channels."""
  layers = [keras.layers.Conv2D(width, 3, padding="same", activation="relu",
                                kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
                                name=f"{name}_conv{i}") for i in range(depth)]
  layers.append(keras.layers.Conv2D(outputs, 3, padding="same", bias_initializer=bias_init,
                                    kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
                                    name=f"{name}_out"))
  results = []
  for x in num_levels_inputs:
    for layer in layers:
      x = layer(x)
    results.append(x)
  return results


def retinanet(*, input_shape=(128, 128, 1), num_classes=10, name="retinanet",
              backbone="small", backbone_weights=None, widths=(16, 32, 64, 96, 128),
              image_size=None, bn_momentum=None, fpn=True, fpn_width=64, head_width=64,
              head_depth=2,
              prior_probability=0.01, min_level=ANCHOR_DEFAULTS["min_level"],
              max_level=ANCHOR_DEFAULTS["max_level"],
              anchor_size_in_strides=ANCHOR_DEFAULTS["anchor_size_in_strides"],
              anchor_scales=ANCHOR_DEFAULTS["anchor_scales"],
              aspect_ratios=ANCHOR_DEFAULTS["aspect_ratios"]):
  """Builds a RetinaNet-style detector.

  Args:
    input_shape: the dataset's (height, width, channels); height and width may be None
      (sizes vary) when `image_size` is given.
    num_classes: number of object classes (no background class: sigmoid scores).
    name: model name.
    backbone: `small`, or a name of `zoo.models.backbones` (`efficientnet_lite0/1/2`,
      `mobilenet_v2`), built with random weights: a recipe's `init_from="imagenet"` loads
      ImageNet's (`zoo.finetune`).
    backbone_weights: `mobilenet_v2` only: None (from scratch) or `imagenet` from Keras's
      cache (never downloaded).
    widths: `small` only: channels of its stages 1, 2, ... (stage l has stride 2**l).
    image_size: side of the square input in pixels (images are letterboxed to it); default
      the dataset's square image size.
    bn_momentum: momentum of every BatchNormalization layer's moving statistics (None:
      Keras's 0.99; Keras Applications' MobileNetV2 has 0.999). Trained from scratch for a
      few hundred steps, 0.999 leaves the inference statistics near their initial values
      and validation worthless; 0.9 tracks the weights.
    fpn: a light top-down feature pyramid (1x1 laterals, upsample-and-add, 3x3 smoothing);
      without it the head reads the backbone's maps through 1x1 projections.
    fpn_width: channels of the pyramid levels.
    head_width: channels of each subnet's 3x3 conv layers.
    head_depth: number of 3x3 conv layers of each subnet.
    prior_probability: initial foreground probability of every class logit (the focal-loss
      paper's prior, 0.01), so that early training is not swamped by background.
    min_level: the finest pyramid level used (stride 2**level pixels).
    max_level: the coarsest pyramid level used.
    anchor_size_in_strides: an anchor's base side, in strides of its level.
    anchor_scales: scales of each anchor's side (see `zoo.boxes.anchors_yxyx`).
    aspect_ratios: anchors' height / width.

  Returns:
    A `keras.Model` mapping images float32 [B, S, S, C] in [0, 1] to float32 raw outputs
    [B, A, 4 + num_classes], anchors in `anchors_yxyx` order.
  """
  size = model_input_size(input_shape, {"image_size": image_size})
  channels = input_shape[-1]
  common.check_image_shape((size, size, channels))
  if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
    raise errors.InvalidValueError("Invalid value for `num_classes`: expected an integer >= 1. "
                                   f"Received: num_classes={num_classes!r}")
  net = None if backbone == SMALL else backbones.get(backbone)
  if backbone_weights is not None and backbone != "mobilenet_v2":
    raise errors.InvalidValueError(
        "Invalid value for `backbone_weights`: only backbone 'mobilenet_v2' takes it "
        "(ImageNet weights otherwise come with init_from=imagenet). Received: "
        f"backbone_weights={backbone_weights!r}, backbone={backbone!r}")
  if not 0 < prior_probability < 1:
    raise errors.InvalidValueError("Invalid value for `prior_probability`: expected 0 < p < 1. "
                                   f"Received: prior_probability={prior_probability!r}")
  if not 1 <= min_level <= max_level:
    raise errors.InvalidValueError(
        "Invalid value for `min_level`/`max_level`: expected 1 <= min_level <= "
        f"max_level. Received: min_level={min_level}, max_level={max_level}")
  common.check_positive_ints("widths", widths)
  # Validates the size against the levels (a multiple of 2**max_level).
  zboxes.anchors_yxyx(size, min_level=min_level, max_level=max_level,
                      size_in_strides=anchor_size_in_strides, scales=anchor_scales,
                      aspect_ratios=aspect_ratios)

  inputs = keras.Input(shape=(size, size, channels), name="images")
  if net is None:
    features = small_backbone(inputs, widths, max_level)
  else:
    if not min(net.levels) <= min_level <= max_level <= max(net.levels):
      raise errors.InvalidValueError(
          f"Invalid value for `min_level`/`max_level`: the {backbone} backbone has levels "
          f"{min(net.levels)}-{max(net.levels)}. Received: {min_level}-{max_level}")
    net.check_input_size(size, size)
    extra = {"weights": backbone_weights} if backbone_weights is not None else {}
    features = net.build(inputs, **extra)
  if bn_momentum is not None:
    if not 0 <= bn_momentum < 1:
      raise errors.InvalidValueError(
          "Invalid value for `bn_momentum`: expected 0 <= bn_momentum < 1. "
          f"Received: bn_momentum={bn_momentum!r}")
    for layer in keras.Model(inputs, list(features.values())).layers:
      if isinstance(layer, keras.layers.BatchNormalization):
        layer.momentum = bn_momentum
  levels = list(range(min_level, max_level + 1))
  pyramid = {l: keras.layers.Conv2D(fpn_width, 1, name=f"lateral{l}")(features[l])
             for l in levels}
  if fpn:
    for l in reversed(levels[:-1]):
      up = keras.layers.UpSampling2D(2, name=f"up{l + 1}")(pyramid[l + 1])
      pyramid[l] = keras.layers.Add(name=f"topdown{l}")([pyramid[l], up])
    pyramid = {l: keras.layers.Conv2D(fpn_width, 3, padding="same", name=f"smooth{l}")(
        pyramid[l]) for l in levels}
  per_location = zboxes.anchors_per_location(anchor_scales, aspect_ratios)
  maps = [pyramid[l] for l in levels]
  prior_bias = -math.log((1 - prior_probability) / prior_probability)
  box_maps = _head(maps, head_width, head_depth, per_location * 4, "zeros", "box")
  class_maps = _head(maps, head_width, head_depth, per_location * num_classes,
                     keras.initializers.Constant(prior_bias), "class")
  flat = []
  for l, box_map, class_map in zip(levels, box_maps, class_maps):
    box = keras.layers.Reshape((-1, 4), name=f"box_flat{l}")(box_map)
    cls = keras.layers.Reshape((-1, num_classes), name=f"class_flat{l}")(class_map)
    flat.append(keras.layers.Concatenate(axis=-1, name=f"level{l}")([box, cls]))
  outputs = keras.layers.Concatenate(axis=1, name="concat_levels")(flat) if len(flat) > 1 else flat[0]
  outputs = keras.layers.Activation("linear", dtype="float32", name="raw_outputs")(outputs)
  return keras.Model(inputs, outputs, name=name)


def heads_model(model: keras.Model) -> keras.Model:
  """A trained `retinanet` (its weights, not a copy) with box deltas `[B, A, 4]` and class
  logits `[B, A, C]` as two outputs instead of one concatenated tensor, anchors in the same
  order. Inference uses it so that the two never share a tensor: an int8 file then gives
  each its own quantization scale (the logits span ~60 units, the deltas a few; on one
  scale the boxes lost 0.04 mAP@[.5:.95])."""
  levels = sorted(int(layer.name[len("box_flat"):]) for layer in model.layers
                  if layer.name.startswith("box_flat"))
  if not levels:
    raise errors.InvalidValueError(f"Invalid value for `model`: {model.name!r} has no "
                                   "box_flat<level> layers (not built by `retinanet`).")

  def by_level(kind):
    maps = [model.get_layer(f"{kind}_flat{l}").output for l in levels]
    return maps[0] if len(maps) == 1 else keras.layers.Concatenate(
        axis=1, name=f"{kind}_levels")(maps)

  return keras.Model(model.inputs, [by_level("box"), by_level("class")],
                     name=f"{model.name}_heads")


def backbone_levels(model: keras.Model) -> list:
  """The levels (log2 of the stride) at which a `retinanet` reads its backbone, ascending:
  those of its FPN's `lateral<level>` layers."""
  return sorted(int(layer.name[len("lateral"):]) for layer in model.layers
                if layer.name.startswith("lateral"))


def backbone_layers_to_level(model: keras.Model, level: int) -> list:
  """The layers of a `retinanet`'s backbone up to and including its stride-`2**level` map
  (the input of the FPN's `lateral<level>`): what `freeze_backbone_to_level` keeps frozen.

  Raises:
    zoo.errors.InvalidValueError: the model has no such level (the levels it has named).
  """
  levels = backbone_levels(model)
  if level not in levels:
    raise errors.InvalidValueError(
        f"Invalid value for `freeze_backbone_to_level`: model {model.name!r} reads its "
        f"backbone at levels {levels}. Received: freeze_backbone_to_level={level}")
  upto = keras.Model(model.inputs, model.get_layer(f"lateral{level}").input)
  return [layer for layer in upto.layers if not isinstance(layer, keras.layers.InputLayer)]


@keras.saving.register_keras_serializable(package="zoo")
class DetectionLoss(keras.losses.Loss):
  """RetinaNet's loss per image: sigmoid focal loss over all non-ignored anchors and
  classes plus `box_weight` x Huber loss of the positive anchors' box deltas, divided by
  the image's number of positive anchors (at least 1). Computed in float32.

  `y_true [B, A, 5]`: encoded boxes and class targets (see
  `zoo.data.detection_input.make_detection_dataset`); `y_pred [B, A, 4 + C]` the model's.
  """

  def __init__(self, num_classes: int, alpha: float = 0.25, gamma: float = 2.0,
               huber_delta: float = 1.0, box_weight: float = 1.0,
               name="detection_loss", **kwargs):
    super().__init__(name=name, **kwargs)
    if not 0 <= alpha <= 1 or gamma < 0 or huber_delta <= 0 or box_weight < 0:
      raise errors.InvalidValueError("Invalid value for DetectionLoss: expected 0 <= alpha <= 1, "
                                     "gamma >= 0, huber_delta > 0, box_weight >= 0. Received: "
                                     f"alpha={alpha}, gamma={gamma}, huber_delta={huber_delta}, "
                                     f"box_weight={box_weight}")
    self.num_classes = num_classes
    self.alpha, self.gamma = alpha, gamma
    self.huber_delta, self.box_weight = huber_delta, box_weight

  def call(self, y_true, y_pred):
    y_true = tf.cast(y_true, tf.float32)
    y_pred = tf.cast(y_pred, tf.float32)
    classes = tf.cast(y_true[..., 4], tf.int32)
    positive = tf.cast(classes >= 0, tf.float32)
    not_ignored = tf.cast(classes != zboxes.IGNORE, tf.float32)
    focal = sigmoid_focal_loss(tf.one_hot(classes, self.num_classes), y_pred[..., 4:],
                               self.alpha, self.gamma)
    focal = tf.reduce_sum(focal, axis=-1) * not_ignored
    error = tf.abs(y_true[..., :4] - y_pred[..., :4])
    quadratic = tf.minimum(error, self.huber_delta)
    huber = tf.reduce_sum(0.5 * quadratic ** 2 + self.huber_delta * (error - quadratic),
                          axis=-1) * positive
    normalizer = tf.maximum(tf.reduce_sum(positive, axis=-1), 1.0)
    return (tf.reduce_sum(focal, axis=-1) + self.box_weight * tf.reduce_sum(huber, axis=-1)
            ) / normalizer

  def get_config(self):
    return {**super().get_config(), "num_classes": self.num_classes, "alpha": self.alpha,
            "gamma": self.gamma, "huber_delta": self.huber_delta, "box_weight": self.box_weight}


def sigmoid_focal_loss(labels, logits, alpha: float, gamma: float):
  """Elementwise sigmoid focal loss (Lin et al. 2017, eq. 5), from logits, float32:
  `-alpha_t (1 - p_t)**gamma log(p_t)`."""
  labels = tf.cast(labels, tf.float32)
  logits = tf.cast(logits, tf.float32)
  cross_entropy = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
  p = tf.sigmoid(logits)
  p_t = labels * p + (1 - labels) * (1 - p)
  alpha_t = labels * alpha + (1 - labels) * (1 - alpha)
  return alpha_t * (1 - p_t) ** gamma * cross_entropy
