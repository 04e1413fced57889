"""The photo backbones, one registry: a name gives how to build the network's feature maps,
which ImageNet weights it has, the normalisation it applies itself and its input size.

  backbones.get("efficientnet_lite1")   # a Backbone, or one line listing the names
  backbones.names()                     # efficientnet_lite0, ..., mobilenet_v2

The photo classifier (`zoo.models.photo.photo_classifier`), the detector
(`zoo.models.detector.retinanet(backbone=...)`) and `init_from=imagenet` (`zoo.finetune`)
read it, and recipes name it with `TrainConfig.backbone` (`--set=backbone=NAME`). Adding
a backbone is one `register(Backbone(...))` and, for ImageNet weights, its converter's
`zoo.converters.checkpoint.Checkpoint` (package, sha256, name table).

Every backbone takes float images in [0, 1] and normalises them itself (its first layers),
so each export holds its own preprocessing.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import keras

from zoo import errors
from zoo.converters import efficientnet_lite as efficientnet_convert
from zoo.converters.checkpoint import Checkpoint
from zoo.models import common, efficientnet_lite


@dataclasses.dataclass(frozen=True)
class Backbone:
  """One backbone.

  Attributes:
    name: its registry name (`--set=backbone=NAME`).
    build: `(inputs, *, bn_momentum, head) -> {level: map}` on float [0, 1] images, level
      `l` having stride `2**l`, and with `head=True` the map a classifier pools as `"head"`.
      `bn_momentum` None keeps the network's own.
    input_size: the square side in pixels its ImageNet weights were trained at (what it
      reads photos best at; any multiple of `2**max(levels)` from `min_input_size` works).
    normalization: what its first layers do to the [0, 1] input (for docs and cards).
    imagenet: where its ImageNet weights come from, or None (from scratch only).
    levels: its pyramid levels.
    min_input_size: the smallest side it takes.
  """
  name: str
  build: Callable[..., dict]
  input_size: int
  normalization: str
  imagenet: Optional[Checkpoint] = None
  levels: tuple = (3, 4, 5)
  min_input_size: int = 32

  def check_input_size(self, height, width) -> None:
    """One line naming a size that would do when `height x width` is too small."""
    for side in (height, width):
      if side is not None and side < self.min_input_size:
        raise errors.InvalidValueError(
            f"Invalid input size for backbone {self.name!r}: {height}x{width} pixels; it "
            f"takes sides of at least {self.min_input_size} (its ImageNet size is "
            f"{self.input_size}x{self.input_size}: --set=folder_image_shape="
            f"{self.input_size},{self.input_size},3 for a folder).")


REGISTRY: dict[str, Backbone] = {}


def register(backbone: Backbone) -> Backbone:
  """Adds `backbone` to the registry (replacing one of its name) and returns it."""
  REGISTRY[backbone.name] = backbone
  return backbone


def names() -> list[str]:
  return sorted(REGISTRY)


def get(name: str) -> Backbone:
  """The backbone called `name`.

  Raises:
    zoo.errors.InvalidValueError: no such backbone (the message lists them).
  """
  if name not in REGISTRY:
    raise errors.InvalidValueError(
        f"Invalid value for `backbone`: expected one of {names()}. Received: "
        f"backbone={name!r}.{errors.did_you_mean(str(name), REGISTRY)}")
  return REGISTRY[name]


def _efficientnet(variant: str) -> Backbone:
  def build(inputs, *, bn_momentum=None, head=False):
    return efficientnet_lite.features(inputs, variant, head=head,
                                      bn_momentum=0.99 if bn_momentum is None else bn_momentum)
  return Backbone(name=variant, build=build, input_size=efficientnet_lite.VARIANTS[variant][2],
                  normalization="(255 x - 127.5) / 128",
                  imagenet=efficientnet_convert.CHECKPOINTS[variant])


# MobileNetV2 layers at strides 8, 16 and 32 (the last is also the pooled head).
MOBILENET_V2_LEVELS = {3: "block_6_expand_relu", 4: "block_13_expand_relu", 5: "out_relu"}


def mobilenet_v2_features(inputs, *, bn_momentum=None, head=False, weights=None) -> dict:
  """Keras Applications' MobileNetV2 (alpha 1.0) on `inputs` in [0, 1]: `{level: map}` for
  levels 3-5 (and `"head"`, the stride-32 1280-d map). `weights="imagenet"` reads Keras's
  cache only (`zoo.models.common.mobilenet_v2_weights`); the registry's entry is from
  scratch."""
  size = inputs.shape[1]
  weights = common.mobilenet_v2_weights(weights, size, knob="backbone_weights")
  x = inputs
  if inputs.shape[-1] == 1:
    x = keras.layers.Concatenate(name="gray_to_rgb")([x, x, x])
  x = keras.layers.Rescaling(2.0, offset=-1.0, name="to_minus1_1")(x)  # MobileNetV2's range.
  net = keras.applications.MobileNetV2(input_tensor=x, include_top=False, weights=weights,
                                       input_shape=(inputs.shape[1], inputs.shape[2], 3))
  if bn_momentum is not None:
    for layer in net.layers:
      if isinstance(layer, keras.layers.BatchNormalization):
        layer.momentum = bn_momentum
  out = {level: net.get_layer(name).output for level, name in MOBILENET_V2_LEVELS.items()}
  if head:
    out["head"] = out[5]
  return out


for _variant in efficientnet_lite.VARIANTS:
  register(_efficientnet(_variant))
register(Backbone(name="mobilenet_v2", build=mobilenet_v2_features, input_size=224,
                  normalization="2 x - 1"))
