"""ImageNet-1k's classes in their standard order, by names people read.

  imagenet.class_names()[0]      # 'tench'
  imagenet.wordnet_ids()[0]      # 'n01440764'
  imagenet.classes()[310]        # {'wordnet_id': 'n02219486', 'name': 'ant',
                                 #  'synonyms': 'ant, emmet, pismire'}

The index is ImageNet's standard one: the WordNet ids sorted, as every ImageNet-1k
checkpoint's 1,000 logits are (the EfficientNet-Lite weights of `zoo.models.backbones`
included). The list is `zoo/imagenet_classes.json`, written by
`scripts/make_imagenet_classes.py` from two files of tensorflow-datasets 4.9.10 (Apache
2.0): the WordNet ids of `tensorflow_datasets/datasets/imagenet2012/labels.txt` and the
synonym lists of `tensorflow_datasets/datasets/siscore/labels.py` (`IMAGENET_LABELS_LIST`,
the widely used list from Caffe's `synset_words.txt`, in which the two "crane" already read
"crane (bird)" and "crane (machine)"). A test checks the committed file is what the script
writes from the installed tensorflow-datasets.

A class's name is the first of its synonyms ("tench, Tinca tinca" -> "tench"). Where two
names would match as `zoo.class_names` compares them (case folded), each one that has a
second synonym gets it in brackets: "Cardigan (Cardigan Welsh corgi)" (the dog) and
"cardigan" (the sweater), "maillot" and "maillot (tank suit)". So the 1,000 names are
distinct, also to `zoo.class_names.clean`.

Standard library only (the apps' floor).
"""

from __future__ import annotations

import functools
import json
import os

from zoo import class_names as class_names_lib

PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "imagenet_classes.json")
NUM_CLASSES = 1000


def readable_names(synonyms: list[str]) -> list[str]:
  """Each class's name from its synonym list ("tench, Tinca tinca"): the first synonym,
  and the second in brackets where the first alone would match another class's name."""
  first = [s.split(",")[0].strip() for s in synonyms]
  keys = [class_names_lib.clean(n) for n in first]
  names = []
  for name, key, listed in zip(first, keys, synonyms):
    others = [s.strip() for s in listed.split(",")[1:]]
    names.append(f"{name} ({others[0]})" if keys.count(key) > 1 and others else name)
  return names


@functools.lru_cache(maxsize=1)
def classes() -> tuple[dict, ...]:
  """The 1,000 classes in ImageNet's order: `{"wordnet_id", "name", "synonyms"}` each."""
  with open(PATH) as f:
    return tuple(json.load(f)["classes"])


def class_names() -> list[str]:
  """The 1,000 names people read, in ImageNet's order ("tench", "goldfish", ...)."""
  return [c["name"] for c in classes()]


def wordnet_ids() -> list[str]:
  """The 1,000 WordNet ids, sorted: ImageNet's order ("n01440764", ...)."""
  return [c["wordnet_id"] for c in classes()]


def source() -> str:
  """Where the list comes from, for a model card."""
  with open(PATH) as f:
    return json.load(f)["source"]
