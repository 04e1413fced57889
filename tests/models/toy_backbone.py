"""A toy backbone of the family, added in one registry entry (its builder and its "ImageNet"
checkpoint, installed as a package `toy-weights`): the `toy` fixture, shared by the tests
through tests/conftest.py."""

import hashlib

import keras
import numpy as np
import pytest

from zoo import errors
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
