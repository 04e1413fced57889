"""The detector builder and its loss (zoo.models.detector)."""

import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo import boxes as zb
from zoo.models import detector

SMALL = dict(widths=(4, 8, 8, 8), fpn_width=8, head_width=8, head_depth=1)


def test_focal_loss_hand_computed():
  # p = sigmoid(0) = 0.5 for a positive: alpha 0.25 * (1 - 0.5)^2 * ln 2.
  value = detector.sigmoid_focal_loss([[1.0]], [[0.0]], alpha=0.25, gamma=2.0)
  np.testing.assert_allclose(value.numpy(), [[0.25 * 0.25 * np.log(2)]], rtol=1e-6)
  # A negative at logit ln(3) (p = 0.75): (1 - 0.25) * 0.75^2 * -ln(0.25).
  value = detector.sigmoid_focal_loss([[0.0]], [[np.log(3.0)]], alpha=0.25, gamma=2.0)
  np.testing.assert_allclose(value.numpy(), [[0.75 * 0.75 ** 2 * np.log(4)]], rtol=1e-5)


def test_detection_loss_normalizes_by_positives_and_skips_ignored():
  loss = detector.DetectionLoss(num_classes=2, reduction=None)
  y_pred = np.zeros((1, 3, 6), np.float32)  # Zero deltas, logits 0 (p = 0.5).
  # Anchor 0 positive class 1 with box target 1.0 in y; anchor 1 ignored; anchor 2 background.
  y_true = np.array([[[1.0, 0, 0, 0, 1], [0, 0, 0, 0, zb.IGNORE], [0, 0, 0, 0, zb.BACKGROUND]]],
                    np.float32)
  pos = 0.25 * 0.25 * np.log(2)
  neg = 0.75 * 0.25 * np.log(2)
  huber = 0.5  # 0.5 * 1^2 with delta 1.
  expected = (pos + neg) + (neg + neg) + huber  # Anchor 0 (both classes), anchor 2; /1 positive.
  np.testing.assert_allclose(loss(y_true, y_pred).numpy(), [expected], rtol=1e-5)
  config = detector.DetectionLoss(num_classes=2, alpha=0.3).get_config()
  assert detector.DetectionLoss.from_config(config).alpha == 0.3


def test_builder_outputs_match_anchors_and_prior():
  model = detector.retinanet(input_shape=(64, 64, 1), num_classes=3, **SMALL)
  anchors = detector.anchors_yxyx((64, 64, 1), **SMALL)
  out = model(np.zeros((2, 64, 64, 1), np.float32))
  assert out.shape == (2, len(anchors), 4 + 3) and out.dtype == "float32"
  np.testing.assert_allclose(tf.sigmoid(out[..., 4:]).numpy(), 0.01, rtol=1e-3)


def test_builder_float32_outputs_under_mixed_precision():
  keras.mixed_precision.set_global_policy("mixed_float16")
  model = detector.retinanet(input_shape=(64, 64, 1), num_classes=3, **SMALL)
  assert model(np.zeros((1, 64, 64, 1), np.float32)).dtype == "float32"


@pytest.mark.parametrize("kwargs, message", [
    (dict(backbone="resnet"), "Invalid value for `backbone`"),
    (dict(prior_probability=1.0), "Invalid value for `prior_probability`"),
    (dict(min_level=4, max_level=3), "min_level"),
    (dict(widths=(4, 8)), "one width per level"),
])
def test_builder_rejects_bad_knobs(kwargs, message):
  with pytest.raises(ValueError, match=message):
    detector.retinanet(input_shape=(64, 64, 1), num_classes=3, **{**SMALL, **kwargs})


def test_varying_image_sizes_need_image_size():
  with pytest.raises(ValueError, match="model_kwargs.image_size"):
    detector.retinanet(input_shape=(None, None, 3), num_classes=3, **SMALL)
  model = detector.retinanet(input_shape=(None, None, 3), num_classes=3, image_size=64, **SMALL)
  assert model.input_shape == (None, 64, 64, 3)


def test_mobilenet_backbone_builds_and_imagenet_fails_offline_at_once(tmp_path, monkeypatch):
  model = detector.retinanet(input_shape=(None, None, 3), num_classes=2, image_size=64,
                             backbone="mobilenet_v2", min_level=3, max_level=5,
                             fpn_width=8, head_width=8, head_depth=1)
  assert model.output_shape[-1] == 6
  monkeypatch.setenv("KERAS_HOME", str(tmp_path))
  start = time.perf_counter()
  with pytest.raises(detector.OfflineWeightsError, match="never downloads"):
    detector.retinanet(input_shape=(None, None, 3), num_classes=2, image_size=64,
                       backbone="mobilenet_v2", backbone_weights="imagenet", max_level=5)
  assert time.perf_counter() - start < 5


def test_recipe_model_weight_count_and_keras_round_trip(tmp_path):
  """The `detector_mnist` architecture, pinned; compiled with its loss, it survives a
  `.keras` save and load (checkpoints, resume, export)."""
  from zoo import registry
  config = registry.get_config("detector_mnist")
  model = registry.build_model(config, input_shape=(128, 128, 1), num_classes=10)
  assert model.count_params() == 513_742  # A changed count is a changed architecture.
  model.compile(keras.optimizers.Adam(), loss=detector.DetectionLoss(10))
  path = str(tmp_path / "m.keras")
  model.save(path)
  again = keras.saving.load_model(path)
  x = np.random.default_rng(0).uniform(size=(1, 128, 128, 1)).astype("float32")
  np.testing.assert_allclose(again(x).numpy(), model(x).numpy(), atol=1e-6)
  assert isinstance(again.loss, detector.DetectionLoss)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_policies_compute_in_half_and_keep_float32_variables(policy):
  keras.mixed_precision.set_global_policy(policy)
  model = detector.retinanet(input_shape=(64, 64, 1), num_classes=3, **SMALL)
  assert all(v.dtype == "float32" for v in model.weights)
  compute = {l.compute_dtype for l in model.layers if l.weights}
  assert compute == {policy.split("_")[1]}
  assert model.get_layer("raw_outputs").compute_dtype == "float32"
