"""Starting a run from trained weights (`TrainConfig.init_from`), as Keras teaches it.

  init_from="none"          random weights (the builder's initializers)
  init_from="imagenet"      EfficientNet-Lite0's ImageNet weights (photo recipes' default)
  init_from="mnist_cnn:4"   a shipped model (a preset, `zoo.presets`), its newest or a version
  init_from="exports/x/3"   an exported version or model directory (its SavedModel's weights)
  init_from="runs/cnn"      a run directory (its last checkpoint)

Weights go in by their Keras path (`block3_dwconv/depthwise_kernel`, `logits/kernel`) where
the source has the same path with the same shape; every other weight keeps its fresh
initialization. So a classifier with other classes gets a new head and keeps the rest, a
detector with other classes a new class subnet, and a GAN both networks from a run
(an export holds only the generator). A source whose input does not fit (other channels, or
a first layer of another shape) is refused with what would fit.

The schedule (`freeze_epochs`, `unfrozen_learning_rate_scale`) is the guide's: the layers
loaded from the source are frozen for the first `freeze_epochs` epochs, so only the new ones
train; then all train, at the learning rate times `unfrozen_learning_rate_scale`. The loaded
BatchNorm layers stay in inference mode throughout (their statistics and scale frozen), as
the guide keeps them. `FreezeLoaded` does it epoch by epoch, so a resumed run freezes what
the uninterrupted one froze.

Sources: keras-team/keras-io `guides/transfer_learning.py`; tensorflow/models'
`init_checkpoint_modules`.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Optional

import keras
import numpy as np

from zoo import artifacts, errors, presets, rundir, runtime
from zoo.converters import efficientnet_lite as efficientnet_convert

NONE, IMAGENET = "none", "imagenet"


@dataclasses.dataclass
class Source:
  """Where a run's first weights come from.

  Attributes:
    spec: `init_from` as given.
    kind: `imagenet`, `preset`, `export` or `run`.
    path: the folder or file read.
    weights_file: the file holding the weights (its sha256 is `sha256`).
    sha256: hex digest of `weights_file`.
    image_shape: `(height, width, channels)` the source was trained on (None: any size).
    recipe: the source's recipe, when it is one of the zoo's.
  """
  spec: str
  kind: str
  path: str
  weights_file: str
  sha256: str
  image_shape: Optional[tuple]
  recipe: Optional[str]

  values: Optional[dict] = dataclasses.field(default=None, repr=False)

  def describe(self) -> dict:
    return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "values"}


def _error(spec: str, message: str) -> errors.InvalidValueError:
  return errors.InvalidValueError(f"Invalid value for `init_from`: {spec!r} {message}")


def resolve(spec: Optional[str]) -> Optional[Source]:
  """The source `spec` names; None for `none`.

  Raises:
    zoo.errors.NotFoundError: an unknown preset (with the list), or a run directory that has
      no checkpoint yet.
    zoo.errors.InvalidValueError: neither a run, an export, a preset nor `imagenet`/`none`.
  """
  if spec in (None, "", NONE):
    return None
  if spec == IMAGENET:
    path = efficientnet_convert.weights_path()
    return Source(spec, IMAGENET, path, path, efficientnet_convert.SHA256, None,
                  "efficientnet_lite0 (ImageNet)")
  kind = "export"
  if not os.path.exists(spec) and presets.looks_like_spec(spec):
    path, kind = presets.resolve(spec), "preset"
  elif os.path.isdir(spec) and os.path.exists(rundir.path(spec, rundir.CONFIG)):
    rundir.check_trained(spec)  # A run with no checkpoint yet: one line saying so.
    checkpoint = rundir.path(spec, rundir.CHECKPOINT)
    try:
      config, trained = rundir.load_run(spec)
    except (OSError, ValueError, KeyError) as e:
      raise _error(spec, f"could not be read ({checkpoint}: "
                         f"{str(e).strip().splitlines()[0] if str(e).strip() else e!r}).") from e
    source = Source(spec, "run", os.path.abspath(spec), checkpoint, presets.sha256(checkpoint),
                    _input_shape(trained), config.recipe)
    source.values = {k: np.asarray(w.numpy()) for k, w in keyed_weights(trained).items()}
    return source
  elif os.path.isdir(spec):
    path = spec if os.path.exists(os.path.join(spec, runtime.CARD)) else (
        runtime.newest_version(spec))
  else:
    raise _error(spec, "is neither a run directory, an exported model, a preset of this zoo "
                       f"({', '.join(presets.names())}), 'imagenet' nor 'none'.")
  card = runtime.read_card(path)
  weights = os.path.join(path, "variables", "variables.data-00000-of-00001")
  if not os.path.exists(weights):
    raise _error(spec, f"has no SavedModel weights ({weights} is missing).")
  return Source(spec, kind, os.path.abspath(path), weights, presets.sha256(weights),
                tuple(card["image_shape"]) if card.get("image_shape") else None,
                card.get("training", {}).get("config", {}).get("recipe"))


def _input_shape(model: keras.Model) -> Optional[tuple]:
  shape = model.inputs[0].shape[1:] if model.inputs else None
  return tuple(shape) if shape is not None and len(shape) == 3 else None


def source_weights(source: Source, model: keras.Model) -> dict:
  """The source's weights by Keras path (for `imagenet`: those of `model`'s
  EfficientNet-Lite0 layers, its classifier excluded)."""
  if source.kind == IMAGENET:
    names = {layer.name for layer in _leaf_layers(model)}
    rows = [row for row in efficientnet_convert.table(include_top=False) if row[0] in names]
    if not rows:
      raise _error(source.spec, f"weights are EfficientNet-Lite0's; model {model.name!r} has "
                                "no EfficientNet-Lite0 layer (recipes image_classifier and "
                                "retinanet_efficientnet have).")
    tensors = efficientnet_convert.read_checkpoint(source.path)
    values = {}
    for layer_name, kind, prefix in rows:
      layer = model.get_layer(layer_name)
      for weight, value in zip(layer.weights,
                               efficientnet_convert.keras_weights(tensors, kind, prefix)):
        values[weight.path] = value
    return values
  if source.values is not None:
    return source.values
  values = artifacts.saved_model_weights(source.path)
  if runtime.read_card(source.path).get("task") == "generation":
    # A GAN's export holds its generator alone (see the module docstring).
    values = {f"generator/{k}": v for k, v in values.items()}
  return values


def _leaf_layers(model: keras.Model) -> list:
  return [layer for layer in model._flatten_layers(include_self=False, recursive=True)
          if not list(layer._flatten_layers(include_self=False, recursive=False))]


def _prefixes(model: keras.Model) -> dict:
  """id(leaf layer) -> the name of the network inside `model` that holds it, with a slash
  (`generator/`), or "" for a layer of `model` itself: Keras gives a GAN's two networks'
  weights the same paths (`bn_0/gamma` in each), so a weight's key is prefix + path."""
  prefixes, seen = {}, {}
  for layer in model._flatten_layers(include_self=False, recursive=False):
    if isinstance(layer, keras.Model):
      # Two networks of one name (a GAN's generator and its moving-average copy) are told
      # apart by their order: `generator/`, then `generator#2/`.
      seen[layer.name] = seen.get(layer.name, 0) + 1
      tag = layer.name if seen[layer.name] == 1 else f"{layer.name}#{seen[layer.name]}"
      for leaf in _leaf_layers(layer):
        prefixes[id(leaf)] = f"{tag}/"
  return prefixes


def _lookup(values: dict, prefix: str, path: str):
  """The source's value for a weight; a numbered copy (`generator#2/`) falls back to its
  network's name when the source has one network of that name (an export's generator)."""
  value = values.get(prefix + path)
  if value is None and "#" in prefix:
    value = values.get(prefix.split("#")[0] + "/" + path)
  return value


def keyed_weights(model: keras.Model) -> dict:
  """Every weight of `model` by its key: `[network/]path` (see `_prefixes`)."""
  prefixes = _prefixes(model)
  return {prefixes.get(id(layer), "") + w.path: w
          for layer in _leaf_layers(model) for w in layer.weights}


def initialize(model: keras.Model, source: Source, image_shape) -> dict:
  """Copies `source`'s weights into `model` where path and shape match; returns the run
  card's `init_from` entry: the source, and the layers `loaded` and `reinitialized`.

  Raises:
    zoo.errors.InvalidValueError: the source's input does not fit `image_shape`, or its first
      layer (or every layer) has other shapes: it was trained for other inputs.
  """
  image_shape = tuple(image_shape)
  if source.image_shape and source.image_shape[-1] != image_shape[-1]:
    raise _error(source.spec, f"was trained on images {source.image_shape}, this run's are "
                              f"{image_shape}: a source with {image_shape[-1]}-channel input "
                              "fits (or another folder_image_shape for the data, or "
                              "--init_from=none).")
  values = source_weights(source, model)
  prefixes = _prefixes(model)
  loaded, reinitialized, first = [], {}, True
  for layer in _leaf_layers(model):
    if not layer.weights:
      continue
    why, prefix = None, prefixes.get(id(layer), "")
    for weight in layer.weights:
      value = _lookup(values, prefix, weight.path)
      if value is None:
        why = why or "not in the source"
      elif tuple(value.shape) != tuple(weight.shape):
        why = f"{weight.path} {tuple(weight.shape)}, the source's {tuple(value.shape)}"
        break
    if why and first and why != "not in the source":
      raise _error(source.spec, f"does not fit this model's input: its first layer "
                                f"{layer.name!r} differs ({why}); the source was trained on "
                                f"images {source.image_shape or '(unknown)'}, this run's are "
                                f"{image_shape}.")
    first = False
    if why:
      reinitialized[prefix + layer.name] = why
      continue
    for weight in layer.weights:
      weight.assign(_lookup(values, prefix, weight.path))
    loaded.append(prefix + layer.name)
  if not loaded:
    raise _error(source.spec, f"has no weight this model can take (recipe "
                              f"{source.recipe or 'unknown'}; every layer differs in name or "
                              "shape).")
  return {**source.describe(), "loaded": loaded, "reinitialized": reinitialized}


def freeze_plan(model: keras.Model, loaded: list[str]) -> tuple[list, list]:
  """`(layers frozen for the first epochs, BatchNorm layers frozen throughout)` among the
  layers `initialize` loaded."""
  names, prefixes = set(loaded), _prefixes(model)
  layers = [layer for layer in _leaf_layers(model)
            if prefixes.get(id(layer), "") + layer.name in names]
  batch_norms = [l for l in layers if isinstance(l, keras.layers.BatchNormalization)]
  return [l for l in layers if l not in batch_norms], batch_norms


class FreezeLoaded(keras.callbacks.Callback):
  """Freezes `layers` for the epochs before `freeze_epochs` and `batch_norms` for the whole
  run; retraces the train step when that changes (the optimizer must already be built on
  every variable that will train: see `zoo.train`).

  Args:
    layers: layers frozen only for the first `freeze_epochs` epochs.
    batch_norms: BatchNorm layers kept in inference mode for the whole run.
    freeze_epochs: epochs, from the start of the run, during which `layers` are frozen.
  """

  def __init__(self, layers, batch_norms, freeze_epochs: int):
    super().__init__()
    self.layers, self.batch_norms, self.freeze_epochs = layers, batch_norms, freeze_epochs

  def on_epoch_begin(self, epoch, logs=None):
    trainable = epoch >= self.freeze_epochs
    changed = any(layer.trainable != trainable for layer in self.layers)
    for layer in self.layers:
      layer.trainable = trainable
    for layer in self.batch_norms:
      layer.trainable = False
    if changed:
      self.model.make_train_function(force=True)
