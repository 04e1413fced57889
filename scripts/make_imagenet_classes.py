"""Writes `zoo/imagenet_classes.json` (`zoo.imagenet`): ImageNet-1k's 1,000 classes in
their standard order, with WordNet ids, the names people read and the full synonym lists,
from two files that tensorflow-datasets ships (no download).

  python scripts/make_imagenet_classes.py

A test fails while the committed file differs from what this writes.
"""

import importlib
import json
import os

import tensorflow_datasets as tfds

from zoo import imagenet

TFDS = os.path.dirname(os.path.abspath(tfds.__file__))
WORDNET_IDS = "tensorflow_datasets/datasets/imagenet2012/labels.txt"
SYNONYMS = "tensorflow_datasets/datasets/siscore/labels.py (IMAGENET_LABELS_LIST)"


def build() -> dict:
  """The file's content, from the installed tensorflow-datasets."""
  with open(os.path.join(os.path.dirname(TFDS), WORDNET_IDS)) as f:
    wordnet_ids = f.read().split()
  synonyms = list(importlib.import_module(
      "tensorflow_datasets.datasets.siscore.labels").IMAGENET_LABELS_LIST)
  if len(wordnet_ids) != imagenet.NUM_CLASSES or wordnet_ids != sorted(wordnet_ids):
    raise ValueError(f"{WORDNET_IDS}: expected 1,000 sorted WordNet ids.")
  if len(synonyms) != imagenet.NUM_CLASSES:
    raise ValueError(f"{SYNONYMS}: expected 1,000 synonym lists.")
  names = imagenet.readable_names(synonyms)
  return {
      "source": (f"tensorflow-datasets {tfds.__version__} (Apache 2.0): WordNet ids from "
                 f"{WORDNET_IDS}, synonyms from {SYNONYMS}; name = first synonym, the "
                 "second in brackets where two names would match"),
      "classes": [{"wordnet_id": w, "name": n, "synonyms": s}
                  for w, n, s in zip(wordnet_ids, names, synonyms)]}


def text() -> str:
  """`build()` as JSON, one class a line."""
  content = build()
  rows = ",\n  ".join(json.dumps(c, ensure_ascii=False) for c in content["classes"])
  return (f'{{\n "source": {json.dumps(content["source"], ensure_ascii=False)},\n'
          f' "classes": [\n  {rows}\n ]\n}}\n')


if __name__ == "__main__":
  with open(imagenet.PATH, "w") as f:
    f.write(text())
  print(f"-> {imagenet.PATH}")
