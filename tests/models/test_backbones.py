"""The backbone family is one registry: a toy backbone added in one entry (its builder and
its "ImageNet" checkpoint, installed as a package) is what `image_classifier`, the photo
detector and `init_from=imagenet` then build and load, with no other edit."""

import hashlib

import keras
import numpy as np
import pytest

from tests.data import image_folders
from zoo import errors, finetune, registry, rundir, tasks, train
from zoo.converters.checkpoint import Checkpoint
from zoo.models import backbones

WIDTHS = {1: 4, 2: 6, 3: 8, 4: 10, 5: 12}


def _toy_build(inputs, *, bn_momentum=None, head=False):
  """Five strided convs; levels 3-5 are the last three."""
  x, maps = inputs, {}
  for level, width in WIDTHS.items():
    x = keras.layers.Conv2D(width, 3, strides=2, padding="same", activation="relu",
                            name=f"toy_conv{level}")(x)
    if level >= 3:
      maps[level] = x
  if head:
    maps["head"] = maps[5]
  return maps


def _toy_table(include_top=True, include_head=True):
  return [(f"toy_conv{level}", "conv", f"conv{level}") for level in WIDTHS]


def _toy_convert(tensors, kind, prefix):
  return [tensors[prefix + ".kernel"], tensors[prefix + ".bias"]]


def _read_npz(path, sha256):
  with open(path, "rb") as f:
    if hashlib.sha256(f.read()).hexdigest() != sha256:
      raise errors.InvalidValueError(f"{path}: sha256 differs")
  return dict(np.load(path))


@pytest.fixture
def toy(tmp_path, monkeypatch):
  """The toy backbone registered, its weights installed as the package `toy-weights`."""
  rng = np.random.default_rng(0)
  values, channels = {}, 3
  for level, width in WIDTHS.items():
    values[f"conv{level}.kernel"] = rng.normal(0, 0.3, (3, 3, channels, width)).astype("f4")
    values[f"conv{level}.bias"] = rng.normal(0, 0.1, (width,)).astype("f4")
    channels = width
  package = tmp_path / "site" / "toy_weights"
  package.mkdir(parents=True)
  (package / "__init__.py").write_text("")
  np.savez(package / "toy.npz", **values)
  monkeypatch.syspath_prepend(str(tmp_path / "site"))
  sha256 = hashlib.sha256((package / "toy.npz").read_bytes()).hexdigest()
  entry = backbones.Backbone(
      name="toy", build=_toy_build, input_size=32, normalization="none",
      imagenet=Checkpoint(title="Toy", package="toy-weights", file="toy.npz", sha256=sha256,
                          table=_toy_table, convert=_toy_convert, reader=_read_npz))
  monkeypatch.setitem(backbones.REGISTRY, "toy", entry)
  return values


def test_image_classifier_trains_a_new_backbone_from_its_imagenet_weights(toy, tmp_path):
  root = image_folders.write_splits(tmp_path / "shapes", splits=(("train", 4), ("val", 2)))
  config = registry.get_config("image_classifier").replace(
      backbone="toy", dataset=f"folder:{root}", folder_image_shape=(32, 32, 3),
      train_epochs=1, min_train_steps=0, freeze_epochs=1, batch_size=4, eval_batch_size=4,
      warmup_epochs=0.0, ema_momentum=0.0, log_images=0)
  run = tmp_path / "run"
  train.train_and_evaluate(config, str(run), data_dir=str(tmp_path / "tfds"), verbose=0)
  card = rundir.read_json(str(run), rundir.RUN_CARD)
  assert card["config"]["backbone"] == "toy"
  init = card["init_from"]
  assert init["kind"] == "imagenet" and init["backbone"] == "toy"
  assert init["loaded"][:5] == [f"toy_conv{level}" for level in WIDTHS]
  assert init["reinitialized"] == {"logits": "not in the source"}  # The new head.
  model = keras.saving.load_model(str(run / rundir.CHECKPOINT))
  assert model.name == "toy"
  for level in WIDTHS:  # Frozen for the whole (one-epoch) run: the checkpoint's values.
    kernel, bias = model.get_layer(f"toy_conv{level}").get_weights()
    np.testing.assert_array_equal(kernel, toy[f"conv{level}.kernel"])
    np.testing.assert_array_equal(bias, toy[f"conv{level}.bias"])


def test_the_photo_detector_builds_and_loads_a_new_backbone(toy):
  config = registry.get_config("retinanet_efficientnet").replace(backbone="toy")
  config = config.replace(model_kwargs={**config.model_kwargs, "image_size": 64})
  assert registry.backbone_of(config) == "toy"
  model = registry.build_model(config, input_shape=(None, None, 3), num_classes=2)
  assert model.input_shape == (None, 64, 64, 3)
  source = finetune.resolve(config.init_from, backbone=registry.backbone_of(config))
  report = finetune.initialize(model, source, (None, None, 3), class_names=["a", "b"],
                               class_layers=tasks.get("detection").class_layers)
  assert report["loaded"][:5] == [f"toy_conv{level}" for level in WIDTHS]
  np.testing.assert_array_equal(model.get_layer("toy_conv3").get_weights()[0],
                                toy["conv3.kernel"])
  # Its levels are the detector's: a level it does not have is one line.
  with pytest.raises(errors.InvalidValueError, match=r"the toy backbone has levels 3-5"):
    registry.build_model(config.replace(model_kwargs={**config.model_kwargs, "max_level": 6}),
                         input_shape=(None, None, 3), num_classes=2)


def test_a_backbone_is_named_once_and_unknown_names_fail_before_any_data(tmp_path):
  config = registry.get_config("image_classifier").replace(
      backbone="efficientnet_lite7", dataset=f"folder:{tmp_path / 'no_such_folder'}")
  with pytest.raises(errors.InvalidValueError, match=r"Invalid value for `backbone`: expected "
                                                     r"one of \['efficientnet_lite0'"):
    train.train_and_evaluate(config, str(tmp_path / "run"), verbose=0)
  both = registry.get_config("retinanet_efficientnet")
  both = both.replace(model_kwargs={**both.model_kwargs, "backbone": "mobilenet_v2"})
  with pytest.raises(errors.InvalidValueError, match=r"`backbone` and `model_kwargs.backbone` "
                                                     r"are both set"):
    both.validate()
  # A model that takes no backbone, asked for one: one line saying how to clear it.
  mobilenet = registry.get_config("image_classifier").replace(model="mobilenet_v2")
  with pytest.raises(errors.InvalidValueError, match=r"model 'mobilenet_v2' takes none \(models "
                                                     r"that do: \['photo_classifier', "
                                                     r"'retinanet'\]\); --set=backbone= clears"):
    registry.build_model(mobilenet, input_shape=(96, 96, 3), num_classes=2)
  built = registry.build_model(mobilenet.replace(backbone=""), input_shape=(96, 96, 3),
                               num_classes=2)
  assert built.name == "mobilenet_v2"
