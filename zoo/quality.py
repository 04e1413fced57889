"""How good is a generator? FID and class statistics in the zoo classifier's feature space.

Method:
  * The feature network is an exported zoo classifier (default the `mnist_cnn` preset,
    its newest version): its `features` signature returns the penultimate layer (the
    input of the logits layer; 3,136 numbers for `mnist_cnn`), its `serving_default` the
    class probabilities. No Inception network is downloaded: offline, the zoo's own MNIST
    classifier is the feature network.
  * FID (Heusel et al., 2017) is the Frechet distance between two Gaussians fitted to the
    features of real images (the dataset's test split) and of generated ones:
    |mu_r - mu_g|^2 + Tr(S_r + S_g - 2 (S_r S_g)^(1/2)). The matrix square root is taken
    through symmetric eigendecompositions, so the result is real and >= 0 up to rounding.
    Like every FID it is biased upward for small samples: compare figures computed from
    the same number of samples only (the sample count is reported beside every FID).
  * These FIDs are NOT comparable with MNIST FIDs in the literature, which use Inception-v3
    features of upscaled images; they compare generators measured with the same
    classifier, which the reports name.
  * Class coverage: the share of samples the classifier assigns to each class (an
    unconditional MNIST generator should give each digit about 10 %); mean confidence:
    the classifier's mean top probability (blurry or ambiguous samples score low); for a
    conditional generator, agreement: the share of samples of each requested class that
    the classifier labels as that class.
"""

from __future__ import annotations

import os
import weakref
from typing import Optional

import numpy as np

from zoo import errors, presets, runtime

DEFAULT_FEATURE_MODEL = "mnist_cnn"  # The shipped classifier's preset (`zoo.presets`).
_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def gaussian_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Mean [D] and covariance [D, D] (float64) of features [N, D]."""
  features = np.asarray(features, dtype=np.float64)
  if features.ndim != 2 or len(features) < 2:
    raise errors.InvalidValueError(f"Invalid value for `features`: expected [N >= 2, D]. "
                                   f"Received: shape={list(features.shape)}")
  return features.mean(axis=0), np.cov(features, rowvar=False)


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
  values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
  return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


# The square root of the last few reference covariances (the real images' statistics, the
# same matrix for every FID of a run or a test): {id: (weak reference, root)}.
_ROOTS: dict = {}
_MAX_ROOTS = 4


def _cached_sqrt_psd(matrix: np.ndarray) -> np.ndarray:
  """`_sqrt_psd(matrix)`, kept while `matrix` (the same array object) lives: statistics
  are never changed in place, so the object stands for its values."""
  entry = _ROOTS.get(id(matrix))
  if entry is not None and entry[0]() is matrix:
    return entry[1]
  if len(_ROOTS) >= _MAX_ROOTS:  # A dead entry first, else the oldest.
    dead = [k for k, (ref, _) in _ROOTS.items() if ref() is None]
    _ROOTS.pop(dead[0] if dead else next(iter(_ROOTS)))
  root = _sqrt_psd(matrix)
  _ROOTS[id(matrix)] = (weakref.ref(matrix), root)
  return root


def frechet_distance(stats_a, stats_b) -> float:
  """FID between two (mean, covariance) pairs.

  Tr((S_a S_b)^(1/2)) = Tr((S_b^(1/2) S_a S_b^(1/2))^(1/2)), and the inner matrix is
  symmetric positive semi-definite, so only `eigh` is needed (no complex sqrtm). S_b is
  the reference (the real images'), the same for every FID of a run: its root is computed
  once and kept (`_cached_sqrt_psd`), so each further FID is one `eigvalsh`.
  """
  (mu_a, s_a), (mu_b, s_b) = stats_a, stats_b
  root_b = _cached_sqrt_psd(s_b)
  cross = np.linalg.eigvalsh(root_b @ s_a @ root_b)
  trace_cross = np.sum(np.sqrt(np.clip(cross, 0, None)))
  return float(np.sum((mu_a - mu_b) ** 2) + np.trace(s_a) + np.trace(s_b) - 2 * trace_cross)


def frechet_distance_to(features: np.ndarray, stats) -> float:
  """FID between the Gaussian of `features` [N, D] and a (mean, covariance) pair: the same
  number as `frechet_distance(gaussian_statistics(features), stats)`, found in N x N when
  there are fewer samples than dimensions.

  With A the centred features, S_a = A^T A / (N - 1) has rank below N, and the nonzero
  eigenvalues of S_a S_b are those of A S_b A^T / (N - 1), an N x N symmetric PSD matrix:
  2,000 samples of the MNIST classifier's 3,136 features cost one 2,000 x 2,000 `eigvalsh`
  instead of two 3,136 x 3,136 eigendecompositions.
  """
  features = np.asarray(features, dtype=np.float64)
  n, dims = features.shape if features.ndim == 2 else (0, 0)
  if n < 2 or n > dims:
    return frechet_distance(gaussian_statistics(features), stats)
  mu_b, s_b = stats
  mu_a = features.mean(axis=0)
  centred = features - mu_a
  inner = (centred @ s_b @ centred.T) / (n - 1)
  cross = np.linalg.eigvalsh((inner + inner.T) / 2)
  trace_cross = np.sum(np.sqrt(np.clip(cross, 0, None)))
  trace_a = np.sum(centred ** 2) / (n - 1)
  return float(np.sum((mu_a - mu_b) ** 2) + trace_a + np.trace(s_b) - 2 * trace_cross)


def resolve_feature_model(path: str = DEFAULT_FEATURE_MODEL) -> str:
  """`path` as given if it exists, a preset by name (`mnist_cnn`, `mnist_cnn:4`), else
  relative to the zoo's checkout (a config naming `saved_models/mnist_cnn`)."""
  if os.path.exists(path):
    return path
  if presets.looks_like_spec(path):
    return presets.resolve(path)
  candidate = os.path.join(_REPO_ROOT, path)
  if not os.path.isabs(path) and os.path.exists(candidate):
    return candidate
  raise errors.NotFoundError(
         f"Invalid value for `feature_model`: {path!r} does not exist. Expected an exported "
         "zoo classifier (a model or version directory with a `features` signature), e.g. "
         f"{DEFAULT_FEATURE_MODEL!r}.")


class FeatureClassifier:
  """An exported zoo classifier used as the feature network: `features` and probabilities.

  Args:
    path: a model directory (newest version) or version directory of a zoo classifier
      export that has the `features` signature.
  """

  def __init__(self, path: str = DEFAULT_FEATURE_MODEL):
    backend, card = runtime.open_model(resolve_feature_model(path))
    if "features" not in backend.signatures:
      raise errors.InvalidValueError(
          f"Invalid value for `feature_model`: {path!r} has no `features` signature; "
          "expected a classifier exported by this zoo version (scripts/export.py).")
    self.backend = backend
    self.card = card
    self.source = runtime.Predictor(backend, card).source

  def describe(self) -> dict:
    """The classifier's identity, for reports and model cards (with `preset`, the name it
    resolves by, when it is one of the zoo's presets)."""
    path = self.source["path"]
    if path.startswith(presets.model_root(self.source["name"]) + os.sep):
      return {**self.source, "preset": f"{self.source['name']}:{self.source['version']}"}
    return {**self.source, "path": os.path.relpath(path, _REPO_ROOT)
            if path.startswith(_REPO_ROOT) else path}

  def features_and_probabilities(self, images: np.ndarray, batch_size: int = 1000):
    feats, probs = [], []
    for start in range(0, len(images), batch_size):
      out = self.backend.run("features", images=images[start:start + batch_size])
      feats.append(out["features"])
      probs.append(out["probabilities"])
    return np.concatenate(feats), np.concatenate(probs)


def generator_quality(images: np.ndarray, classifier: FeatureClassifier, real_stats,
                      requested_labels: Optional[np.ndarray] = None,
                      num_classes: int = 10) -> dict:
  """FID, class coverage, confidence (and agreement) of generated uint8 images [N, H, W, C].

  Args:
    images: generated images, uint8 pixels as the dataset stores them.
    classifier: the feature network.
    real_stats: `gaussian_statistics` of the real images' features.
    requested_labels: for a conditional generator, the class asked for each image.
    num_classes: number of classes.
  """
  feats, probs = classifier.features_and_probabilities(images)
  predicted = np.argmax(probs, axis=-1)
  coverage = np.bincount(predicted, minlength=num_classes) / len(predicted)
  result = {
      "num_samples": int(len(images)),
      "fid": frechet_distance_to(feats, real_stats),
      "class_coverage": [round(float(c), 4) for c in coverage],
      "coverage_min": float(coverage.min()), "coverage_max": float(coverage.max()),
      "mean_confidence": float(np.mean(np.max(probs, axis=-1))),
  }
  if requested_labels is not None:
    requested_labels = np.asarray(requested_labels)
    agreement = [float(np.mean(predicted[requested_labels == c] == c))
                 if np.any(requested_labels == c) else float("nan")
                 for c in range(num_classes)]
    result["label_agreement"] = [round(a, 4) for a in agreement]
    result["label_agreement_min"] = float(np.nanmin(agreement))
  return result


def real_statistics(classifier: FeatureClassifier, images: np.ndarray):
  """`gaussian_statistics` of the classifier's features of real uint8 images."""
  return gaussian_statistics(classifier.features_and_probabilities(images)[0])
