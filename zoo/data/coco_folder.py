"""A user's own COCO-format folder as a tensorflow-datasets dataset: `--dataset=coco:DIR`.

Two layouts are recognised:

  Roboflow export          DIR/train/_annotations.coco.json + the images beside it,
                           DIR/valid/..., optional DIR/test/...   (splits train, valid, test)
  original COCO layout     DIR/annotations/instances_<split>.json + DIR/<split>/ images
                           (e.g. splits train2017, val2017)

The folder is checked, then prepared once into `--data_dir` as a TFDS dataset
(`coco_folder/<folder>_<hash>`, the hash of its annotation files and image sizes: editing
the folder makes a new one) with TFDS's detection layout, so every detection pipeline
reads it like `voc` or `coco`: `image` (the file's own bytes, JPEG or PNG, gray or RGB,
any size), `image/filename`, and `objects` with `bbox` (normalized `[ymin, xmin, ymax,
xmax]`, converted here from COCO's pixel `[x, y, width, height]`) and `label` (0-based).

Bad annotations:
  errors (naming the file and the entry): malformed JSON; missing `images`, `annotations`
    or `categories`; an image file that does not exist; an annotation of an unknown image
    id or unknown category id; a box entirely outside its image; a split whose categories
    differ from the training split's.
  counted warnings (skipping is the sensible default): zero-size boxes (width or height
    <= 0) are skipped; boxes partly outside their image are clipped to it; `iscrowd`
    regions are skipped (COCO's own evaluation ignores them as targets).
Classes are the categories ordered by id. Roboflow's placeholder category (the one whose
name is every other category's `supercategory`, with supercategory `none`, never used) is
left out.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
from typing import Optional

import numpy as np
import tensorflow_datasets as tfds

from zoo import boxes as zboxes
from zoo import class_names, errors
from zoo.data.quiet import quiet_tfds, shown_path

PREFIX = "coco:"
ROBOFLOW_ANNOTATIONS = "_annotations.coco.json"
ROBOFLOW_SPLITS = ("train", "valid", "test")

log = logging.getLogger("zoo")


class AnnotationError(errors.InvalidValueError):
  """A COCO annotation file that cannot be used as it is (see the module docstring)."""


@dataclasses.dataclass
class Split:
  """One split of a COCO folder, checked: image files with their boxes and labels."""
  name: str
  annotation_file: str
  image_dir: str
  files: list  # [(path, boxes_yxyx float32 [N, 4], labels int64 [N])]
  class_names: list
  warnings: dict


def is_coco_folder(name: str) -> bool:
  return name.startswith(PREFIX)


def find_splits(directory: str) -> dict[str, tuple[str, str]]:
  """`{split: (annotation file, image folder)}` of a folder in either layout.

  Raises:
    AnnotationError: the folder is missing, or has neither layout.
  """
  if not os.path.isdir(directory):
    raise AnnotationError(f"Invalid value for `dataset`: coco:{directory} is not a "
                          "directory.")
  splits = {}
  for split in ROBOFLOW_SPLITS:
    path = os.path.join(directory, split, ROBOFLOW_ANNOTATIONS)
    if os.path.isfile(path):
      splits[split] = (path, os.path.dirname(path))
  annotations = os.path.join(directory, "annotations")
  if os.path.isdir(annotations):
    for entry in sorted(os.listdir(annotations)):
      match = re.fullmatch(r"instances_(\w+)\.json", entry)
      if match:
        splits[match.group(1)] = (os.path.join(annotations, entry),
                                  os.path.join(directory, match.group(1)))
  if not splits:
    raise AnnotationError(
        f"Invalid value for `dataset`: coco:{directory} holds no COCO annotations. Expected "
        f"Roboflow's layout (train/{ROBOFLOW_ANNOTATIONS}, valid/..., test/... with the "
        "images beside each) or COCO's (annotations/instances_<split>.json with the images "
        "in <split>/).")
  return splits


def _read_json(path: str) -> dict:
  try:
    with open(path) as f:
      document = json.load(f)
  except json.JSONDecodeError as e:
    raise AnnotationError(f"{path}: malformed JSON at line {e.lineno}, column {e.colno}: "
                          f"{e.msg}.") from e
  if not isinstance(document, dict):
    raise AnnotationError(f"{path}: expected a JSON object with `images`, `annotations` and "
                          f"`categories`; found a {type(document).__name__}.")
  missing = [k for k in ("images", "annotations", "categories") if k not in document]
  if missing:
    raise AnnotationError(f"{path}: missing {missing}; a COCO detection file has "
                          "`images`, `annotations` and `categories`.")
  return document


def _classes(categories: list, path: str) -> list[tuple[int, str]]:
  """`[(category id, name)]` ordered by id, Roboflow's placeholder left out."""
  try:
    cats = sorted((int(c["id"]), str(c["name"]), str(c.get("supercategory", "")))
                  for c in categories)
  except (KeyError, TypeError, ValueError) as e:
    raise AnnotationError(f"{path}: every category needs an integer `id` and a `name` "
                          f"({e!r}).") from e
  supers = {s for _, _, s in cats}
  kept = [(i, n) for i, n, s in cats if not (s == "none" and n in supers and len(cats) > 1)]
  pairs = class_names.collisions([n for _, n in kept])
  if pairs:
    (a, b), = pairs[:1]
    raise AnnotationError(f"{path}: categories {a!r} and {b!r} are one class when names are "
                          "compared (case and surrounding spaces ignored, as fine-tuning "
                          "matches classes by name); rename or merge one.")
  return kept


def load_split(name: str, annotation_file: str, image_dir: str) -> Split:
  """Reads and checks one split (see the module docstring for what fails and what warns)."""
  document = _read_json(annotation_file)
  classes = _classes(document["categories"], annotation_file)
  index = {cat_id: i for i, (cat_id, _) in enumerate(classes)}
  images = {}
  for entry in document["images"]:
    try:
      image_id, file_name = entry["id"], entry["file_name"]
      height, width = float(entry["height"]), float(entry["width"])
    except (KeyError, TypeError, ValueError) as e:
      raise AnnotationError(f"{annotation_file}: image entry {entry!r} needs `id`, "
                            "`file_name`, `height` and `width`.") from e
    path = os.path.join(image_dir, file_name)
    if not os.path.isfile(path):
      raise AnnotationError(f"{annotation_file}: image id {image_id} names file "
                            f"{file_name!r}, which does not exist in {image_dir}.")
    images[image_id] = {"path": path, "height": height, "width": width, "boxes": [],
                        "labels": []}
  warnings = {"zero_size_boxes_skipped": 0, "boxes_clipped": 0, "crowd_regions_skipped": 0}
  for ann in document["annotations"]:
    ann_id = ann.get("id", "?")
    image = images.get(ann.get("image_id"))
    if image is None:
      raise AnnotationError(f"{annotation_file}: annotation id {ann_id} refers to image id "
                            f"{ann.get('image_id')!r}, which is not in `images`.")
    if ann.get("category_id") not in index:
      raise AnnotationError(
          f"{annotation_file}: annotation id {ann_id} has unknown category id "
          f"{ann.get('category_id')!r}; known ids: {sorted(index)}.")
    if ann.get("iscrowd"):
      warnings["crowd_regions_skipped"] += 1
      continue
    try:
      x, y, w, h = (float(v) for v in ann["bbox"])
    except (KeyError, TypeError, ValueError) as e:
      raise AnnotationError(f"{annotation_file}: annotation id {ann_id} needs `bbox` = "
                            "[x, y, width, height] in pixels.") from e
    if w <= 0 or h <= 0:
      warnings["zero_size_boxes_skipped"] += 1
      continue
    H, W = image["height"], image["width"]
    if x >= W or y >= H or x + w <= 0 or y + h <= 0:
      raise AnnotationError(
          f"{annotation_file}: annotation id {ann_id}: box [x={x}, y={y}, w={w}, h={h}] "
          f"lies entirely outside its image ({image['path']}, {W:g}x{H:g} pixels).")
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, W), min(y + h, H)
    if (x0, y0, x1, y1) != (x, y, x + w, y + h):
      warnings["boxes_clipped"] += 1
    image["boxes"].append([x0, y0, x1 - x0, y1 - y0])
    image["labels"].append(index[ann["category_id"]])
  files = [(im["path"], zboxes.coco_xywh_to_yxyx(im["boxes"], im["height"], im["width"]),
            np.asarray(im["labels"], np.int64)) for im in images.values()]
  for kind, count in warnings.items():
    if count:
      log.warning("%s: %d %s.", annotation_file, count, kind.replace("_", " "))
  return Split(name, annotation_file, image_dir, files, [n for _, n in classes], warnings)


def load_folder(directory: str) -> dict[str, Split]:
  """Every split of the folder, checked; all splits must share the first split's classes
  (train's when there is one)."""
  found = find_splits(directory)
  splits = {name: load_split(name, *paths) for name, paths in found.items()}
  reference = splits.get("train") or next(iter(splits.values()))
  for split in splits.values():
    if split.class_names != reference.class_names:
      raise AnnotationError(
          f"{split.annotation_file}: categories {split.class_names} differ from those of "
          f"{reference.annotation_file} ({reference.class_names}); every split needs the "
          "same categories.")
  return splits


def _fingerprint(splits: dict[str, Split]) -> str:
  digest = hashlib.sha256()
  for name in sorted(splits):
    with open(splits[name].annotation_file, "rb") as f:
      digest.update(name.encode() + f.read())
    for path, _, _ in splits[name].files:
      digest.update(f"{os.path.basename(path)}:{os.path.getsize(path)}".encode())
  return digest.hexdigest()[:10]


def prepare(directory: str, data_dir: Optional[str] = None) -> tfds.core.DatasetBuilder:
  """Checks the folder and returns its TFDS builder, prepared into `data_dir` (once per
  folder content)."""
  splits = load_folder(directory)
  class_names = splits[next(iter(splits))].class_names
  base = re.sub(r"[^a-z0-9]+", "_", os.path.basename(os.path.abspath(directory)).lower())
  features = tfds.features.FeaturesDict({
      "image": tfds.features.Image(shape=(None, None, 3)),
      "image/filename": tfds.features.Text(),
      "objects": tfds.features.Sequence({
          "bbox": tfds.features.BBoxFeature(),
          "label": tfds.features.ClassLabel(names=class_names),
      }),
  })

  def examples(split):
    for i, (path, boxes, labels) in enumerate(split.files):
      yield i, {"image": path, "image/filename": os.path.basename(path),
                "objects": {"bbox": np.clip(boxes, 0.0, 1.0), "label": labels}}

  builder = tfds.dataset_builders.AdhocBuilder(
      name="coco_folder", version="1.0.0", config=f"{base.strip('_') or 'data'}_"
                                                  f"{_fingerprint(splits)}",
      features=features, data_dir=data_dir,
      split_datasets={name: examples(split) for name, split in splits.items()},
      description=f"COCO-format folder {os.path.abspath(directory)}")
  if not builder.is_prepared():
    log.info("Preparing %s from %s into %s (once) ...", builder.info.full_name, directory,
             shown_path(builder.data_dir_root))
    with quiet_tfds():
      builder.download_and_prepare()
  return builder
