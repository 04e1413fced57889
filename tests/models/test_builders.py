"""Contract tests for every classifier builder in zoo.models.MODELS (and the test-only tiny
variants), and their validation errors. The GAN builders have theirs in test_gan.py, the
detector in test_detector.py."""

import functools
import time

import pytest

from tests.models.builder_contract import check_builder_contract, check_export_contract
from tests.recipes import TINY_BUILDERS
from zoo import errors, models

# MNIST-sized classifiers; `mobilenet_v2` (photos, 32 px or more) has its own test below.
CLASSIFIERS = {name: b for name, b in {**models.MODELS, **TINY_BUILDERS}.items()
               if name not in ("dcgan", "tf_tutorial_dcgan", "retinanet", "mobilenet_v2",
                               "efficientnet_lite0", "photo_classifier")}

# Exact weight counts, MNIST-shaped input (28, 28, 1), 10 classes. A changed count is a
# changed architecture: update it knowingly.
EXPECTED_PARAMS = {
    "mlp": 784 * 1024 + 4 * 1024 + 1024 * 1024 + 4 * 1024 + 1024 * 10 + 10,
    "mlp_tiny": 784 * 16 + 4 * 16 + 16 * 10 + 10,
    "cnn": 5 * 5 * 32 + 4 * 32 + 3 * 3 * 32 * 64 + 4 * 64 + 7 * 7 * 64 * 10 + 10,
    "cnn_tiny": 5 * 5 * 4 + 4 * 4 + 3 * 3 * 4 * 8 + 4 * 8 + 7 * 7 * 8 * 10 + 10,
    "keras_example_cnn": 34826,  # As printed by the keras-io example's model.summary().
}


def test_every_builder_is_covered():
  assert set(EXPECTED_PARAMS) == set(CLASSIFIERS)
  assert set(models.MODELS) - set(CLASSIFIERS) == {"dcgan", "tf_tutorial_dcgan", "retinanet",
                                                    "mobilenet_v2", "efficientnet_lite0",
                                                    "photo_classifier"}


def test_contract_mobilenet_v2_and_imagenet_fails_offline_at_once(tmp_path, monkeypatch):
  """The photo builder at its smallest input under mixed_float16 (every layer of Keras
  Applications' MobileNetV2 computes in float16, the head in float32, loss scaling added;
  `image_classifier`'s runs on folders cover float32); ImageNet weights not in Keras's
  cache fail in under 5 s."""
  check_builder_contract(models.mobilenet_v2, input_shape=(32, 32, 3), num_classes=3,
                         expected_params=410_208 + 1280 * 3 + 3, tmp_path=tmp_path,
                         policy="mixed_float16")
  # 410,208: Keras Applications' MobileNetV2 alpha 0.35 without its top (its last
  # convolution keeps 1280 channels below alpha 1); then the 3-class head.
  gray = models.mobilenet_v2(input_shape=(32, 32, 1), num_classes=2)
  assert tuple(gray.output.shape) == (None, 2)
  monkeypatch.setenv("KERAS_HOME", str(tmp_path))
  start = time.perf_counter()
  with pytest.raises(models.OfflineWeightsError, match="never downloads"):
    models.mobilenet_v2(input_shape=(96, 96, 3), num_classes=3, weights="imagenet")
  assert time.perf_counter() - start < 5


def test_contract_photo_classifier(tmp_path):
  """The photo recipes' builder (EfficientNet-Lite0, image_classifier's default) under
  mixed_float16 (float16 compute in every layer but the float32 head); random weights
  here, ImageNet's are tested in test_efficientnet_lite."""
  check_builder_contract(models.photo_classifier, input_shape=(32, 32, 3), num_classes=3,
                         expected_params=3_413_024 + 1280 * 3 + 3, tmp_path=tmp_path,
                         policy="mixed_float16")
  # 3,413,024: EfficientNet-Lite0 without its 1000-class classifier, BatchNorm statistics
  # included (4,694,024 with it, as the conversion test builds it).
  gray = models.photo_classifier(input_shape=(32, 32, 1), num_classes=2)
  assert tuple(gray.output.shape) == (None, 2)
  # image_classifier's model before the family, which its older runs resume with: the
  # same network, weight by weight.
  legacy = models.efficientnet_lite0_classifier(input_shape=(32, 32, 3), num_classes=3,
                                                weights=None)
  new = models.photo_classifier(input_shape=(32, 32, 3), num_classes=3)
  assert [(w.path, w.shape) for w in legacy.weights] == [(w.path, w.shape) for w in new.weights]


@pytest.mark.parametrize("backbone, params", [
    # Without the 1000-class classifier: 5,470,344 and 6,150,168 with it (the papers' 5.4 M
    # and 6.1 M).
    ("efficientnet_lite1", 5_470_344 - 1281 * 1000),
    ("efficientnet_lite2", 6_150_168 - 1281 * 1000),
    ("mobilenet_v2", 2_257_984),
])
def test_every_backbone_builds_a_photo_classifier(backbone, params):
  model = models.photo_classifier(input_shape=(64, 64, 3), num_classes=3, backbone=backbone)
  assert model.count_params() == params + 1280 * 3 + 3
  assert tuple(model.output.shape) == (None, 3) and model.name == backbone


def test_a_backbone_that_does_not_exist_or_an_input_too_small_is_one_line():
  with pytest.raises(errors.InvalidValueError,
                     match=r"expected one of \['efficientnet_lite0', 'efficientnet_lite1', "
                           r"'efficientnet_lite2', 'mobilenet_v2'\]\. Received: "
                           r"backbone='efficientnet_lite9'\. Did you mean"):
    models.photo_classifier(backbone="efficientnet_lite9")
  with pytest.raises(errors.InvalidValueError,
                     match=r"backbone 'efficientnet_lite2': 16x16 pixels; it takes sides of "
                           r"at least 32 .*folder_image_shape=260,260,3"):
    models.photo_classifier(input_shape=(16, 16, 3), backbone="efficientnet_lite2")


@pytest.mark.parametrize("name", sorted(CLASSIFIERS))
def test_contract_float32(name, tmp_path):
  check_builder_contract(CLASSIFIERS[name], input_shape=(28, 28, 1), num_classes=10,
                         expected_params=EXPECTED_PARAMS[name], tmp_path=tmp_path)


# Outputs of a float16 / bfloat16 model vs its float32 export: bfloat16 keeps 8 bits of
# mantissa, so probabilities may differ by a few 1e-3.
EXPORT_ATOL = {"mixed_float16": 2e-3, "mixed_bfloat16": 2e-2}


@pytest.mark.parametrize("name", sorted(CLASSIFIERS))
@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_contract_mixed_precision_and_float32_export(name, policy, tmp_path):
  model = check_builder_contract(CLASSIFIERS[name], input_shape=(28, 28, 1), num_classes=10,
                                 expected_params=EXPECTED_PARAMS[name], tmp_path=tmp_path,
                                 policy=policy)
  check_export_contract(model, lambda: CLASSIFIERS[name](input_shape=(28, 28, 1),
                                                           num_classes=10),
                        input_shape=(28, 28, 1), tmp_path=tmp_path, atol=EXPORT_ATOL[policy])


@pytest.mark.parametrize("name", ["mlp_tiny", "cnn_tiny"])
def test_other_shapes_and_classes(name, tmp_path):
  model = CLASSIFIERS[name](input_shape=(32, 32, 3), num_classes=5, name="x")
  assert tuple(model.output.shape) == (None, 5)


@pytest.mark.parametrize("name", sorted(CLASSIFIERS))
@pytest.mark.parametrize("kwargs, message", [
    ({"input_shape": (28, 28)}, r"Invalid value for `input_shape`: expected \(height, width, "
                                r"channels\).*Received: input_shape=\(28, 28\)"),
    ({"input_shape": (28, 0, 1)}, r"Invalid value for `input_shape`"),
    ({"num_classes": 1}, r"Invalid value for `num_classes`: expected an integer >= 2\. "
                         r"Received: num_classes=1"),
])
def test_shared_argument_errors(name, kwargs, message):
  args = {"input_shape": (28, 28, 1), "num_classes": 10, **kwargs}
  with pytest.raises(ValueError, match=message):
    CLASSIFIERS[name](**args)


def test_mlp_errors():
  with pytest.raises(ValueError, match=r"Invalid value for `hidden_units`.*Received: hidden_units=\(\)"):
    models.mlp(hidden_units=())
  with pytest.raises(ValueError, match=r"Invalid value for `dropout`: expected 0 <= dropout < 1\. "
                                       r"Received: dropout=1\.5"):
    models.mlp(dropout=1.5)


def test_cnn_errors():
  with pytest.raises(ValueError, match=r"Invalid value for `filters`.*Received: filters=\(8, -1\)"):
    models.cnn(filters=(8, -1))
