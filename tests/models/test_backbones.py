"""The backbone family is one registry: a toy backbone added in one entry (its builder and
its "ImageNet" checkpoint, installed as a package) is what `image_classifier`, the photo
detector and `init_from=imagenet` then build and load, with no other edit."""

import keras
import numpy as np
import pytest

from tests.data import image_folders
from tests.models.toy_backbone import WIDTHS
from zoo import errors, finetune, registry, rundir, tasks, train


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
