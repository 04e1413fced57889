"""Recipes, the registry, config validation and command-line overrides."""

import json

import pytest

from zoo import registry, rundir
from zoo.configs import TrainConfig, apply_overrides


def test_unknown_recipe_lists_valid_names():
  with pytest.raises(ValueError, match=r"Unknown recipe 'mnist_resnet'\. Valid recipes: "
                                       r"\[.*'mnist_cnn'.*'mnist_mlp'.*\]"):
    registry.get_config("mnist_resnet")


def test_unknown_model_lists_valid_builders():
  config = registry.get_config("mnist_mlp").replace(model="vit")
  with pytest.raises(ValueError, match=r"Unknown model 'vit'\. Valid models: \[.*'cnn'.*'mlp'"):
    registry.build_model(config, input_shape=(28, 28, 1), num_classes=10)


@pytest.mark.parametrize("name", registry.recipe_names())
def test_recipes_are_valid_and_round_trip_through_json(name):
  config = registry.get_config(name).validate()
  again = TrainConfig.from_dict(json.loads(config.to_json()))
  assert json.loads(again.to_json()) == json.loads(config.to_json())
  # The shape of each task's usual images: detection canvases, a photo folder's images
  # (`image_classifier`), MNIST digits.
  shape = ((128, 128, 1) if again.task == "detection" else tuple(again.folder_image_shape)
           if again.dataset.startswith("folder:") else (28, 28, 1))
  if again.model_kwargs.get("image_size") == "auto":  # Sized from the data when a run starts.
    again = rundir.with_derived(again, {"model_kwargs": {"image_size": 128}})
  model = registry.build_model(again, input_shape=shape, num_classes=10)
  assert model.count_params() > 0


def test_get_config_returns_a_fresh_copy():
  a = registry.get_config("mnist_cnn")
  a.model_kwargs["dropout"] = 0.9
  assert registry.get_config("mnist_cnn").model_kwargs.get("dropout") != 0.9


def test_overrides_are_typed():
  config = apply_overrides(registry.get_config("mnist_cnn"), [
      "train_epochs=3", "learning_rate=1", "augment=False", "dataset=fashion_mnist",
      "model_kwargs.filters=(8, 16)"])
  assert config.train_epochs == 3
  assert config.learning_rate == 1.0 and isinstance(config.learning_rate, float)
  assert config.augment is False
  assert config.dataset == "fashion_mnist"
  assert config.model_kwargs["filters"] == (8, 16)


@pytest.mark.parametrize("override, message", [
    ("train_epochs", r"Invalid override 'train_epochs': expected `field=value`"),
    ("epochz=3", r"Unknown config field 'epochz'.*valid fields: \[.*'train_epochs'"),
    ("train_epochs=three", r"`train_epochs` expects int, got 'three'"),
    ("augment=1", r"`augment` expects bool, got 1"),
    ("batch_size=True", r"`batch_size` expects int, got True"),
])
def test_override_errors(override, message):
  with pytest.raises(ValueError, match=message):
    apply_overrides(registry.get_config("mnist_mlp"), [override])


@pytest.mark.parametrize("changes, message", [
    ({"batch_size": 0}, r"Invalid value for `batch_size`: expected a positive integer\. "
                        r"Received: batch_size=0"),
    ({"train_epochs": -1}, r"Invalid value for `train_epochs`: expected an integer >= 0\. "
                           r"Received: train_epochs=-1"),
    ({"learning_rate": 0.0}, r"Invalid value for `learning_rate`"),
    ({"optimizer": "lamb"}, r"Invalid value for `optimizer`: expected one of \['adam', 'adamw', "
                            r"'sgd'\]\. Received: optimizer='lamb'"),
    ({"mixed_precision": "fp8"}, r"Invalid value for `mixed_precision`"),
    ({"strategy": "horovod"}, r"Invalid value for `strategy`"),
    ({"warmup_epochs": -1.0}, r"Invalid value for `warmup_epochs`: expected a number >= 0"),
    ({"max_warmup_fraction": 1.5}, r"Invalid value for `max_warmup_fraction`"),
])
def test_validation_errors(changes, message):
  with pytest.raises(ValueError, match=message):
    registry.get_config("mnist_mlp").replace(**changes).validate()


def test_from_dict_rejects_unknown_fields():
  with pytest.raises(ValueError, match=r"Unknown config field\(s\) \['colour'\]"):
    TrainConfig.from_dict({"model": "mlp", "colour": "red"})


@pytest.mark.parametrize("name", ["image_classifier", "retinanet_efficientnet",
                                  "retinanet_mobilenet"])
def test_a_photo_run_written_before_the_backbone_field_reads_as_todays_recipe(name):
  """Its config.json named the backbone in model_kwargs (the detectors) or as the model
  (image_classifier's `efficientnet_lite0`, weights from init_from): the same network, so
  it resumes under today's recipe instead of being refused as another config."""
  today = registry.get_config(name)
  old = today.to_dict()
  del old["backbone"], old["min_train_steps"]
  if name == "image_classifier":
    old["model"] = "efficientnet_lite0"
    old["model_kwargs"] = {"weights": None, **old["model_kwargs"]}
  else:
    old["model_kwargs"] = {"backbone": today.backbone, **old["model_kwargs"]}
  assert TrainConfig.from_dict(old) == today.replace(min_train_steps=0)
  # A hand-written config whose builder loaded ImageNet itself stays as it was.
  own = {**old, "model": "efficientnet_lite0", "model_kwargs": {"weights": "imagenet"}}
  assert TrainConfig.from_dict(own).model == "efficientnet_lite0"
