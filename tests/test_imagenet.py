"""ImageNet's classes by name (`zoo.imagenet`): ImageNet's standard order, names people read,
each distinct, and the committed list is what its script writes from tensorflow-datasets."""

import sys

from tests.conftest import REPO
from zoo import class_names, imagenet

sys.path.insert(0, str(REPO / "scripts"))
import make_imagenet_classes  # noqa: E402


def test_the_committed_list_is_what_the_script_writes_from_tensorflow_datasets():
  with open(imagenet.PATH) as f:
    assert f.read() == make_imagenet_classes.text(), (
        "zoo/imagenet_classes.json is stale: run python scripts/make_imagenet_classes.py")


def test_the_order_is_imagenets_sorted_wordnet_ids_with_readable_names():
  ids, names = imagenet.wordnet_ids(), imagenet.class_names()
  assert len(ids) == len(names) == imagenet.NUM_CLASSES and ids == sorted(ids)
  # Indexes every ImageNet-1k checkpoint uses (torchvision, Keras, timm).
  assert (ids[0], names[0]) == ("n01440764", "tench")
  assert (ids[1], names[1]) == ("n01443537", "goldfish")
  assert (ids[309], names[309]) == ("n02206856", "bee")
  assert (ids[310], names[310]) == ("n02219486", "ant")
  assert names[207] == "golden retriever" and names[954] == "banana"
  assert imagenet.classes()[310]["synonyms"] == "ant, emmet, pismire"
  assert "tensorflow-datasets" in imagenet.source()


def test_names_that_would_match_stay_distinguishable():
  names = imagenet.class_names()
  assert class_names.collisions(names) == []  # Distinct also case-folded.
  assert (names[134], names[517]) == ("crane (bird)", "crane (machine)")
  assert (names[638], names[639]) == ("maillot", "maillot (tank suit)")
  assert (names[264], names[474]) == ("Cardigan (Cardigan Welsh corgi)", "cardigan")
  assert imagenet.readable_names(["a, x", "A, y", "b, z", "a"]) == ["a (x)", "A (y)", "b", "a"]
