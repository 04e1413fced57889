"""zoo.quality on the real MNIST with the shipped classifier as the feature network."""

import numpy as np
import pytest

from tests.conftest import REPO
from zoo import data, quality


@pytest.fixture(scope="module")
def mnist_features(real_mnist_data_dir):
  builder = data.prepare_builder("mnist", data_dir=real_mnist_data_dir)
  classifier = quality.FeatureClassifier()
  test, labels = data.split_arrays(builder, "test")
  return classifier, test, labels, quality.real_statistics(classifier, test)


def test_fid_of_real_images_is_near_zero_and_of_noise_is_large(mnist_features,
                                                               real_mnist_data_dir):
  classifier, test, _, stats = mnist_features
  builder = data.prepare_builder("mnist", data_dir=real_mnist_data_dir)
  train_images, _ = data.split_arrays(builder, "train", 10_000)
  real = quality.generator_quality(train_images, classifier, stats)
  noise = np.random.default_rng(0).integers(0, 256, (10_000, 28, 28, 1), dtype=np.uint8)
  fake = quality.generator_quality(noise, classifier, stats)
  faint = quality.generator_quality(test[:2000] // 4, classifier, stats)  # Dim digits.
  # 10,000 real training images vs the 10,000 test images: FID ~ sampling noise only.
  assert real["fid"] < 0.02 * fake["fid"], (real["fid"], fake["fid"])
  assert real["coverage_min"] > 0.08 and real["mean_confidence"] > 0.98
  assert faint["fid"] > 3 * real["fid"]
  # Symmetric and zero for identical statistics.
  assert quality.frechet_distance(stats, stats) == pytest.approx(0.0, abs=1e-6)


def test_label_agreement_counts_per_requested_class(mnist_features):
  classifier, test, labels, stats = mnist_features
  truth = quality.generator_quality(test[:2000], classifier, stats, labels[:2000])
  shifted = quality.generator_quality(test[:2000], classifier, stats, (labels[:2000] + 1) % 10)
  assert truth["label_agreement_min"] > 0.97
  assert shifted["label_agreement_min"] < 0.02


def test_feature_model_without_features_signature_is_refused(tmp_path):
  with pytest.raises(FileNotFoundError, match=r"Invalid value for `feature_model`"):
    quality.FeatureClassifier(str(tmp_path / "nope"))
  with pytest.raises(ValueError, match=r"has no `features` signature"):
    quality.FeatureClassifier(str(REPO / "saved_models" / "mnist_mlp" / "2"))


@pytest.mark.parametrize("samples", [40, 200])  # Fewer, and more, samples than dimensions.
def test_fid_of_few_samples_in_their_own_space_is_the_full_computation(samples):
  rng = np.random.default_rng(0)
  real = rng.normal(size=(500, 120)) @ rng.normal(size=(120, 120))
  stats = quality.gaussian_statistics(real)
  fake = rng.normal(size=(samples, 120)) * 3.0 + 0.5
  full = quality.frechet_distance(quality.gaussian_statistics(fake), stats)
  assert quality.frechet_distance_to(fake, stats) == pytest.approx(full, rel=1e-6)
  assert quality.frechet_distance_to(real[:samples], stats) < full  # Real reads closer.



def test_the_reference_covariances_root_is_computed_once_and_gives_the_same_fid(monkeypatch):
  rng = np.random.default_rng(1)
  real = quality.gaussian_statistics(rng.normal(size=(400, 30)) @ rng.normal(size=(30, 30)))
  fakes = [quality.gaussian_statistics(rng.normal(size=(300, 30)) * s) for s in (1.0, 2.0)]
  sqrt_psd = quality._sqrt_psd

  def textbook(a, b):  # Tr((S_a S_b)^(1/2)) through S_a's root, computed afresh.
    root_a = sqrt_psd(a[1])
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ b[1] @ root_a), 0, None)).sum()
    return np.sum((a[0] - b[0]) ** 2) + np.trace(a[1]) + np.trace(b[1]) - 2 * cross

  roots = []
  monkeypatch.setattr(quality, "_sqrt_psd", lambda m: roots.append(m) or sqrt_psd(m))
  for fake in fakes + fakes:
    assert quality.frechet_distance(fake, real) == pytest.approx(textbook(fake, real),
                                                                 rel=1e-9)
  assert len(roots) == 1 and roots[0] is real[1]  # Four FIDs, one root: the reference's.
  copy = (real[0], real[1].copy())  # Another array, equal values: a root of its own.
  assert quality.frechet_distance(fakes[0], copy) == pytest.approx(
      quality.frechet_distance(fakes[0], real), rel=1e-12)
  assert len(roots) == 2
