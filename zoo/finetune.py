"""Starting a run from trained weights (`TrainConfig.init_from`), as Keras teaches it.

  init_from="none"          random weights (the builder's initializers)
  init_from="imagenet"      the backbone's ImageNet weights (photo recipes' default;
                            `zoo.models.backbones`)
  init_from="mnist_cnn:4"   a shipped model (a preset, `zoo.presets`), its newest or a version
  init_from="exports/x/3"   an exported version or model directory (its SavedModel's weights)
  init_from="runs/cnn"      a run directory (its last checkpoint)

Weights go in by their Keras path (`block3_dwconv/depthwise_kernel`, `conv_0/kernel`) where
the source has the same path with the same shape; every other weight keeps its fresh
initialization. A source whose input does not fit (other channels, or a first layer of
another shape) is refused with what would fit.

Classes travel by name, never by index (`zoo.class_names`). The layers that hold one slice
per class (the task's `class_layers`: a classifier's `logits`, a detector's `class_out`, a
conditional GAN's class embeddings) take the source's slice of each class whose name the
source's labels have, moved to that class's index in this run; the others keep their fresh
initialization. So the same classes in another order give the same head reordered, some
shared names carry those rows, and no shared name gives a new head. Which classes were
carried, reordered or new is the run card's `init_from.classes`. A source whose labels are
missing or are not distinct names cannot be matched and is refused in one line.

The schedule (`freeze_epochs`, `unfrozen_learning_rate_scale`) is the guide's: for the first
`freeze_epochs` epochs the layers loaded from the source are frozen except the class layers,
so the head (new, partly new or carried) and every new layer train on frozen features; then
all train, at the learning rate times `unfrozen_learning_rate_scale`. The loaded BatchNorm
layers stay in inference mode throughout (their statistics and scale frozen), as the guide
keeps them. `FreezeLoaded` does it epoch by epoch, so a resumed run freezes what the
uninterrupted one froze.

Sources: keras-team/keras-io `guides/transfer_learning.py`; tensorflow/models'
`init_checkpoint_modules`.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Optional, Sequence

import keras
import numpy as np

from zoo import artifacts, errors, presets, rundir, runtime
from zoo import class_names as class_names_lib
from zoo.models import backbones

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
    labels: the source's class names as its card or run card gives them, unchecked (None:
      it gives none); `zoo.class_names.check`ed when a head is carried by name.
    labels_from: where `labels` were read, for errors.
    backbone: for `imagenet`, whose weights (`zoo.models.backbones`).
  """
  spec: str
  kind: str
  path: str
  weights_file: str
  sha256: str
  image_shape: Optional[tuple]
  recipe: Optional[str]
  labels: Optional[object] = None
  labels_from: str = ""
  backbone: Optional[str] = None

  values: Optional[dict] = dataclasses.field(default=None, repr=False)

  def describe(self) -> dict:
    return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
            if f.name not in ("values", "labels", "labels_from")}


def _error(spec: str, message: str) -> errors.InvalidValueError:
  return errors.InvalidValueError(f"Invalid value for `init_from`: {spec!r} {message}")


def resolve(spec: Optional[str], backbone: Optional[str] = None) -> Optional[Source]:
  """The source `spec` names; None for `none`. `imagenet` is `backbone`'s ImageNet weights
  (`zoo.models.backbones`; `zoo.registry.backbone_of(config)` names a run's).

  Raises:
    zoo.errors.NotFoundError: an unknown preset (with the list), or a run directory that has
      no checkpoint yet.
    zoo.errors.InvalidValueError: neither a run, an export, a preset nor `imagenet`/`none`.
  """
  if spec in (None, "", NONE):
    return None
  if spec == IMAGENET:
    if backbone is None:
      raise _error(spec, "loads a photo backbone's weights, and this model has none "
                         f"(backbones: {', '.join(backbones.names())}; recipes "
                         "image_classifier and retinanet_efficientnet have one).")
    net = backbones.get(backbone)
    if net.imagenet is None:
      raise _error(spec, f"has no weights for backbone {backbone!r}: it trains from "
                         "scratch (--init_from=none). Backbones with ImageNet weights: "
                         f"{', '.join(n for n in backbones.names() if backbones.get(n).imagenet)}.")
    path = net.imagenet.path()
    return Source(spec, IMAGENET, path, path, net.imagenet.sha256, None,
                  f"{backbone} (ImageNet)", backbone=backbone)
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
    card_path = rundir.path(spec, rundir.RUN_CARD)
    card = rundir.read_json(spec, rundir.RUN_CARD) if os.path.exists(card_path) else {}
    labels = card.get("dataset", {}).get("class_names") if isinstance(card, dict) else None
    source = Source(spec, "run", os.path.abspath(spec), checkpoint, presets.sha256(checkpoint),
                    _input_shape(trained), config.recipe, labels,
                    f"{card_path} (dataset.class_names)")
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
                card.get("training", {}).get("config", {}).get("recipe"), card.get("labels"),
                f"{os.path.join(path, runtime.CARD)} (labels)")


def _input_shape(model: keras.Model) -> Optional[tuple]:
  shape = model.inputs[0].shape[1:] if model.inputs else None
  return tuple(shape) if shape is not None and len(shape) == 3 else None


def source_weights(source: Source, model: keras.Model) -> dict:
  """The source's weights by Keras path (for `imagenet`: those of `model`'s backbone
  layers that its checkpoint's table names, its ImageNet classifier excluded)."""
  if source.kind == IMAGENET:
    checkpoint = backbones.get(source.backbone).imagenet
    weights = checkpoint.layer_weights(model, include_top=False, path=source.path,
                                       only_present=True)
    if not weights:
      raise _error(source.spec, f"weights are {checkpoint.title}'s; model {model.name!r} has "
                                f"none of its layers (built with backbone={source.backbone!r}?).")
    return {weight.path: value for name, values in weights.items()
            for weight, value in zip(model.get_layer(name).weights, values)}
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


def initialize(model: keras.Model, source: Source, image_shape, *,
               class_names: Optional[Sequence[str]] = None,
               class_layers: Optional[dict] = None) -> dict:
  """Copies `source`'s weights into `model` where path and shape match, and its class rows
  by name; returns the run card's `init_from` entry: the source, the layers `loaded` and
  `reinitialized`, and (with class layers) which `classes` were carried, reordered or new.

  Args:
    model: the freshly built model.
    source: what `resolve` returned.
    image_shape: this run's `(height, width, channels)`.
    class_names: this run's classes, in its label order.
    class_layers: `{layer name: class axis}`: the layers whose weights have one slice per
      class along that axis (`logits`: -1; a detector's `class_out`, whose channels are
      anchor by anchor each a run of classes: -1; a class embedding: 0). The task gives it
      (`Task.class_layers`). A class layer takes the source's slice of each class whose
      name the source has (`zoo.class_names`), at that class's new index; the slices of
      other classes keep their fresh initialization.

  Raises:
    zoo.errors.InvalidValueError: the source's input does not fit `image_shape`, or its first
      layer (or every layer) has other shapes: it was trained for other inputs; or a class
      layer would be carried and the source's labels are missing or not names.
  """
  image_shape = tuple(image_shape)
  if source.image_shape and source.image_shape[-1] != image_shape[-1]:
    raise _error(source.spec, f"was trained on images {source.image_shape}, this run's are "
                              f"{image_shape}: a source with {image_shape[-1]}-channel input "
                              "fits (or another folder_image_shape for the data, or "
                              "--init_from=none).")
  values = source_weights(source, model)
  prefixes = _prefixes(model)
  class_layers = class_layers or {}
  plan = None
  loaded, reinitialized, first = [], {}, True
  for layer in _leaf_layers(model):
    if not layer.weights:
      continue
    prefix = prefixes.get(id(layer), "")
    found = [_lookup(values, prefix, w.path) for w in layer.weights]
    if layer.name in class_layers and all(v is not None for v in found):
      if plan is None:
        plan = _class_plan(source, class_names)
      why = _carry_classes(source.spec, layer, found, class_layers[layer.name], plan)
      first = False
      if why:
        reinitialized[prefix + layer.name] = why
      else:
        loaded.append(prefix + layer.name)
      continue
    why = None
    for weight, value in zip(layer.weights, found):
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
    for weight, value in zip(layer.weights, found):
      weight.assign(value)
    loaded.append(prefix + layer.name)
  if not loaded:
    raise _error(source.spec, f"has no weight this model can take (recipe "
                              f"{source.recipe or 'unknown'}; every layer differs in name or "
                              "shape).")
  report = {**source.describe(), "loaded": loaded, "reinitialized": reinitialized}
  if plan is not None:
    report["classes"] = plan.describe()
  return report


def _class_plan(source: Source, class_names) -> class_names_lib.Plan:
  """Which source row each of this run's classes takes; one line when either list is not
  a list of names."""
  fix = ("Fine-tuning carries a head class by class, by name: use a source exported or "
         "trained by this zoo (its card lists its classes), or --init_from=none.")
  if source.labels is None:
    raise _error(source.spec, f"names no classes ({source.labels_from or 'no labels'} is "
                              f"missing), so its head cannot be matched to this run's "
                              f"classes by name. {fix}")
  theirs = class_names_lib.check(source.labels, f"init_from {source.spec!r}, "
                                                f"{source.labels_from}", fix)
  mine = class_names_lib.check(list(class_names or []), "this run's dataset",
                               "Rename the classes so that each is distinct.")
  return class_names_lib.match(mine, theirs)


def _carry_classes(spec: str, layer, found: list, axis: int,
                   plan: class_names_lib.Plan) -> Optional[str]:
  """Assigns `layer` the source's weights `found` (all present), each class's slice along
  `axis` moved to its new index; None when done, else why the layer keeps its fresh
  initialization. A weight's `axis` holds `groups` runs of one slice per class (a detector:
  one run per anchor), the same number in the source and here."""
  if not plan.any_shared:
    return (f"no class in common with the source's ({len(plan.source_names)}: "
            f"{_few(plan.source_names)}; this run's: {_few(plan.names)})")
  mine_n, theirs_n = len(plan.names), len(plan.source_names)
  carried = []
  for weight, value in zip(layer.weights, found):
    fresh = np.moveaxis(np.asarray(weight.numpy()), axis, 0)
    theirs = np.moveaxis(np.asarray(value), axis, 0)
    if theirs.shape[0] % theirs_n:
      raise _error(spec, f"names {theirs_n} classes, but its {weight.path} has "
                         f"{theirs.shape[0]} class rows (axis {axis}): its labels and weights "
                         "disagree (a damaged card?).")
    groups = fresh.shape[0] // mine_n
    if theirs.shape[0] != groups * theirs_n or fresh.shape[1:] != theirs.shape[1:]:
      return f"{weight.path} {tuple(weight.shape)}, the source's {tuple(value.shape)}"
    fresh = fresh.reshape(groups, mine_n, *fresh.shape[1:]).copy()
    theirs = theirs.reshape(groups, theirs_n, *theirs.shape[1:])
    for j, i in enumerate(plan.rows):
      if i is not None:
        fresh[:, j] = theirs[:, i]
    carried.append(np.moveaxis(fresh.reshape(groups * mine_n, *fresh.shape[2:]), 0, axis))
  for weight, value in zip(layer.weights, carried):
    weight.assign(value)
  return None


def _few(names, most: int = 4) -> str:
  shown = ", ".join(repr(n) for n in list(names)[:most])
  return shown + (f", ... {len(names) - most} more" if len(names) > most else "")


def freeze_plan(model: keras.Model, loaded: list[str], class_layers: Sequence[str] = (), *,
                freeze_epochs: int = 1, throughout: Sequence = ()) -> tuple[list, list]:
  """`(layers frozen for the first epochs, layers frozen throughout)` among the layers
  `initialize` loaded: the BatchNorm layers and those of `throughout` (the early backbone,
  `freeze_backbone_to_level`) for the whole run, the others for the first `freeze_epochs`;
  the class layers (the head) are never frozen.

  Raises:
    zoo.errors.InvalidValueError: nothing would train in the frozen epochs (every layer
      with weights was loaded and none is a class layer): `freeze_epochs` cannot apply.
  """
  names, prefixes = set(loaded), _prefixes(model)
  layers = [layer for layer in _leaf_layers(model)
            if prefixes.get(id(layer), "") + layer.name in names
            and layer.name not in class_layers]
  always = {id(l) for l in throughout}
  kept = [l for l in layers if isinstance(l, keras.layers.BatchNormalization) or id(l) in always]
  if freeze_epochs and all(l in layers for l in _leaf_layers(model) if l.trainable_weights):
    raise errors.InvalidValueError(
        f"Invalid value for `freeze_epochs`: every layer of {model.name!r} was loaded from "
        "`init_from` and none is new or a class layer, so nothing would train while they are "
        f"frozen; set freeze_epochs=0. Received: freeze_epochs={freeze_epochs}")
  return [l for l in layers if l not in kept], kept


class FreezeLoaded(keras.callbacks.Callback):
  """Freezes `layers` for the epochs before `freeze_epochs` and `batch_norms` (with the
  early backbone of `freeze_backbone_to_level`) for the whole run; retraces the train step
  when that changes (the optimizer must already be built on every variable that will
  train: see `zoo.train`).

  Args:
    layers: layers frozen only for the first `freeze_epochs` epochs.
    batch_norms: layers frozen (BatchNorm: in inference mode) for the whole run.
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
