"""Recipe registry: one name picks a config, and the config's `model` picks a builder.

Scripts resolve everything through here; unknown names fail with the list of valid ones.
"""

from __future__ import annotations

import inspect
import re
import sys
from typing import Callable, Optional

import keras

from zoo import errors, models
from zoo.models import backbones
from zoo.configs import (RunCard, TrainConfig, cdcgan_mnist, dcgan_mnist, detector_mnist,
                         image_classifier, keras_example_cnn, mnist_cnn, mnist_mlp,
                         retinanet_efficientnet, retinanet_mobilenet, tf_tutorial_dcgan)

RECIPES: dict[str, Callable[[], TrainConfig]] = {
    "mnist_mlp": mnist_mlp.get_config,
    "mnist_cnn": mnist_cnn.get_config,
    "keras_example_cnn": keras_example_cnn.get_config,
    "dcgan_mnist": dcgan_mnist.get_config,
    "cdcgan_mnist": cdcgan_mnist.get_config,
    "tf_tutorial_dcgan": tf_tutorial_dcgan.get_config,
    "detector_mnist": detector_mnist.get_config,
    "retinanet_mobilenet": retinanet_mobilenet.get_config,
    "retinanet_efficientnet": retinanet_efficientnet.get_config,
    "image_classifier": image_classifier.get_config,
}


def recipe_names() -> list[str]:
  return sorted(RECIPES)


def run_card(name: str) -> RunCard:
  """The recipe's `RUN_CARD`: its command and the figures it was measured to reach."""
  get_config(name)  # An unknown name fails here, with the list.
  return sys.modules[RECIPES[name].__module__].RUN_CARD


def summary(name: str) -> str:
  """The first line of the recipe module's docstring, without its `Recipe `name`: ` lead."""
  get_config(name)
  line = sys.modules[RECIPES[name].__module__].__doc__.strip().splitlines()[0]
  return re.sub(r"^(Recipe|Baseline) `[a-z0-9_]+`: ", "", line)


def get_config(name: str) -> TrainConfig:
  """Returns a fresh copy of the recipe's config."""
  if name not in RECIPES:
    raise errors.InvalidValueError(f"Unknown recipe {name!r}. Valid recipes: "
                                   f"{recipe_names()}.{errors.did_you_mean(name, RECIPES)}")
  return RECIPES[name]().replace(recipe=name)


def build_model(config: TrainConfig, *, input_shape, num_classes: int) -> keras.Model:
  """Builds `config.model` with the config's knobs. The dtype policy must already be set."""
  if config.model not in models.MODELS:
    raise errors.InvalidValueError(
        f"Unknown model {config.model!r}. Valid models: {sorted(models.MODELS)}")
  kwargs = dict(config.model_kwargs)
  builder = models.MODELS[config.model]
  if config.backbone:
    if "backbone" not in inspect.signature(builder).parameters:
      raise errors.InvalidValueError(
          f"Invalid value for `backbone`: model {config.model!r} takes none (models that do: "
          f"{sorted(n for n, b in models.MODELS.items() if 'backbone' in inspect.signature(b).parameters)}"
          f"); --set=backbone= clears it. Received: backbone={config.backbone!r}")
    kwargs["backbone"] = config.backbone
  return builder(input_shape=tuple(input_shape), num_classes=num_classes, **kwargs)


def backbone_of(config: TrainConfig) -> Optional[str]:
  """The photo backbone `config`'s model is built on (`zoo.models.backbones`), or None: its
  `backbone`, a `model_kwargs.backbone` of the family (runs made before the field), or the
  model's own name (`efficientnet_lite0`, image_classifier's model before the family).

  Raises:
    zoo.errors.InvalidValueError: `backbone` names no backbone (the list in one line).
  """
  if config.backbone:
    return backbones.get(config.backbone).name
  name = config.model_kwargs.get("backbone", config.model)
  return name if name in backbones.REGISTRY else None
