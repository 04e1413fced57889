"""A user's own folder of labelled images as a tensorflow-datasets dataset: `--dataset=folder:DIR`.

Layouts (classes are the class folders' names, in sorted order, as
`keras.utils.image_dataset_from_directory` and Ultralytics' classify mode take them):

  splits       DIR/train/<class>/*, DIR/valid/<class>/* (or val/), optional DIR/test/<class>/*
               (Roboflow's and most Kaggle exports; split names become `train`, `valid`, `test`;
               without valid/ or val/, `valid` is held out of train as for `classes`)
  classes      DIR/<class>/*: split once into `train` and `valid`, stratified (in every class
               the same `validation_fraction` of its files, at least one when it has two),
               by a fixed seed (`SPLIT_SEED`), so that every training seed is measured on
               the same held-out images
  images       DIR/* with no class folders: one class (named after the folder), split the
               same way: data for an unconditional generator

Files may sit at any depth inside a class folder. Images are JPEG, PNG, BMP or GIF (told by
their extension; the content is decoded whatever it is), gray, RGB, RGBA or palette, any
size. Each is decoded with TensorFlow's own op (`zoo.data.images.decode_image`: alpha
dropped, a GIF's first frame), converted to the recipe's channels and resized to its
`folder_image_shape` by `folder_resize` (`pad`, `crop` or `stretch`, `zoo.data.images.fit_image`;
or `mnist_digit`, `zoo.data.images.center_digit`, for pictures of one digit or character)
once, when the folder is prepared into `--data_dir` as TFDS dataset
`image_folder/<folder>_<H>x<W>x<C>_<resize>_<hash>`. The hash covers every file's path,
size and modification time and the split settings: a changed folder is prepared again, an
unchanged one is read as it is. A classifier's exports prepare a photo the same way
(`photo_preprocessing` defaults to `folder_resize`), so a served photo is what training saw.

Bad input:
  errors (one line naming the folder or file; nothing is left in `--data_dir`): the folder
    is missing or holds no images; a class folder holds no images; two class folders whose
    names differ only in case or surrounding spaces (`Cat/`, `cat/`); a split folder has loose
    images instead of class folders; the splits' classes differ; a file with an image
    extension does not decode (corrupt or truncated).
  counted warnings: files without an image extension (`README.txt`, `labels.csv`,
    `Thumbs.db`) are skipped and the first few named: exports often carry such files, and
    failing on them would stop a good folder. Names starting with a dot are ignored
    silently (`.DS_Store`, `.ipynb_checkpoints`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
import shutil
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from zoo import class_names as class_names_lib
from zoo import errors, runtime
from zoo.configs.base import FOLDER_RESIZE
from zoo.data import images as images_lib
from zoo.data.quiet import quiet_tfds, shown_path

PREFIX = "folder:"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
# Split folder names -> the split's name in the prepared dataset.
SPLIT_FOLDERS = {"train": "train", "valid": "valid", "val": "valid", "test": "test"}
SPLIT_SEED = 0
_NAMED_SKIPPED = 3

log = logging.getLogger("zoo")


class FolderError(errors.InvalidValueError):
  """A folder of images that cannot be used as it is (see the module docstring)."""


@dataclasses.dataclass
class Folder:
  """A checked folder: its layout, classes and the files of each split.

  Attributes:
    directory: the folder.
    layout: `splits`, `classes` or `images` (see the module docstring).
    class_names: sorted class folder names (`images`: the folder's own name).
    splits: `{split: [(path, label index)]}`, each split's files in sorted order.
    skipped: files skipped for not having an image extension.
  """
  directory: str
  layout: str
  class_names: list
  splits: dict
  skipped: list


def is_image_folder(name: str) -> bool:
  return name.startswith(PREFIX)


def _visible(names) -> list[str]:
  return sorted(n for n in names if not n.startswith("."))


def _is_image(name: str) -> bool:
  return name.lower().endswith(IMAGE_EXTENSIONS)


def _files_under(directory: str, skipped: list) -> list[str]:
  """Every image file under `directory` (any depth, sorted); other files go to `skipped`."""
  found = []
  for root, dirs, files in os.walk(directory, followlinks=True):
    dirs[:] = _visible(dirs)
    for name in _visible(files):
      (found if _is_image(name) else skipped).append(os.path.join(root, name))
  return sorted(found)


def _classes_of(directory: str, what: str, skipped: list) -> dict[str, list[str]]:
  """`{class: [image files]}` of a folder of class folders."""
  entries = _visible(os.listdir(directory))
  loose = [e for e in entries if os.path.isfile(os.path.join(directory, e))]
  classes = [e for e in entries if os.path.isdir(os.path.join(directory, e))]
  if any(_is_image(e) for e in loose):
    raise FolderError(
        f"Invalid value for `dataset`: {what} {directory} holds images directly "
        f"({next(e for e in loose if _is_image(e))!r}); expected one folder per class "
        f"inside it ({directory}/<class>/*.jpg).")
  skipped.extend(os.path.join(directory, e) for e in loose)
  files = {c: _files_under(os.path.join(directory, c), skipped) for c in classes}
  for c, paths in files.items():
    if not paths:
      raise FolderError(
          f"Invalid value for `dataset`: class folder {os.path.join(directory, c)} holds no "
          f"images (expected files ending in {', '.join(IMAGE_EXTENSIONS)}).")
  return files


def _split(files: dict[str, list[str]], fraction: float) -> tuple[list, list]:
  """Stratified, seeded `(train, valid)` lists of `(path, label)`."""
  rng = np.random.default_rng(SPLIT_SEED)
  train, valid = [], []
  for label, name in enumerate(sorted(files)):
    paths = files[name]
    n_valid = int(round(len(paths) * fraction))
    if fraction > 0 and len(paths) >= 2:
      n_valid = min(max(n_valid, 1), len(paths) - 1)
    held = set(rng.permutation(len(paths))[:n_valid].tolist())
    for i, path in enumerate(paths):
      (valid if i in held else train).append((path, label))
  return train, valid


def scan(directory: str, validation_fraction: float = 0.2) -> Folder:
  """Finds the folder's layout, classes and files, and checks them (no image is decoded).

  Args:
    directory: the folder.
    validation_fraction: share of each class held out as `valid` when the folder has no
      split folders (0 < fraction < 1).

  Raises:
    FolderError: see the module docstring.
  """
  what = f"folder:{directory}"
  if not os.path.isdir(directory):
    raise FolderError(f"Invalid value for `dataset`: {what} is not a directory. Expected "
                      f"--dataset=folder:DIR, a folder of class folders of images.")
  if not 0.0 < validation_fraction < 1.0:
    raise FolderError("Invalid value for `folder_validation_fraction`: expected a number "
                      f"between 0 and 1. Received: {validation_fraction!r}")
  skipped: list[str] = []
  entries = _visible(os.listdir(directory))
  split_dirs = {e: SPLIT_FOLDERS[e.lower()] for e in entries
                if e.lower() in SPLIT_FOLDERS and os.path.isdir(os.path.join(directory, e))}
  if split_dirs and "train" not in split_dirs.values():
    raise FolderError(
        f"Invalid value for `dataset`: {what} has {sorted(split_dirs)} but no train/ folder; "
        "the split layout is train/<class>/*, valid/ or val/, optional test/.")
  if split_dirs:
    if len(set(split_dirs.values())) != len(split_dirs):
      raise FolderError(f"Invalid value for `dataset`: {what} has both val/ and valid/; "
                        "keep one.")
    per_split = {split: _classes_of(os.path.join(directory, e), "split folder", skipped)
                 for e, split in split_dirs.items()}
    # Files beside the split folders (Roboflow's README.roboflow.txt) belong to no split.
    skipped.extend(os.path.join(directory, e) for e in entries
                   if os.path.isfile(os.path.join(directory, e)))
    reference = sorted(per_split["train"])
    for split, files in per_split.items():
      if sorted(files) != reference:
        extra = sorted(set(files) - set(reference))
        missing = sorted(set(reference) - set(files))
        raise FolderError(
            f"Invalid value for `dataset`: the classes of {what}'s {split!r} split differ "
            f"from train's ({'extra: ' + str(extra) if extra else ''}"
            f"{'; ' if extra and missing else ''}"
            f"{'missing: ' + str(missing) if missing else ''}); every split needs the same "
            "class folders.")
    splits = {split: [(p, label) for label, c in enumerate(reference) for p in files[c]]
              for split, files in per_split.items()}
    if "valid" not in splits:  # train (and test) only: hold out part of train.
      kept, held = _split(per_split["train"], validation_fraction)
      splits["train"], splits["valid"] = kept, held
    layout, class_names = "splits", reference
  elif any(os.path.isdir(os.path.join(directory, e)) for e in entries):
    files = _classes_of(directory, "folder", skipped)
    layout, class_names = "classes", sorted(files)
    splits = dict(zip(("train", "valid"), _split(files, validation_fraction)))
  else:
    files = {os.path.basename(os.path.abspath(directory)): _files_under(directory, skipped)}
    if not next(iter(files.values())):
      raise FolderError(
          f"Invalid value for `dataset`: {what} holds no images. Expected class folders "
          f"({directory}/<class>/*.jpg), split folders ({directory}/train/<class>/*, "
          f"valid/ or val/, test/) or images ({', '.join(IMAGE_EXTENSIONS)}).")
    layout, class_names = "images", sorted(files)
    splits = dict(zip(("train", "valid"), _split(files, validation_fraction)))
  pairs = class_names_lib.collisions(class_names)
  if pairs:
    (a, b), = pairs[:1]
    raise FolderError(
        f"Invalid value for `dataset`: {what} has class folders {a!r} and {b!r}, one class "
        "when names are compared (case and surrounding spaces ignored, as fine-tuning "
        "matches classes by name); rename or merge one.")
  if skipped:
    named = ", ".join(os.path.relpath(p, directory) for p in skipped[:_NAMED_SKIPPED])
    more = f" and {len(skipped) - _NAMED_SKIPPED} more" if len(skipped) > _NAMED_SKIPPED else ""
    log.warning("%s: skipped %d file(s) that are not images (%s%s); images end in %s.",
                what, len(skipped), named, more, ", ".join(IMAGE_EXTENSIONS))
  return Folder(directory, layout, list(class_names), splits, skipped)


def _fingerprint(folder: Folder, settings: str) -> str:
  digest = hashlib.sha256(settings.encode())
  for split in sorted(folder.splits):
    for path, label in sorted(folder.splits[split]):
      stat = os.stat(path)
      digest.update(f"{split}:{label}:{os.path.relpath(path, folder.directory)}:"
                    f"{stat.st_size}:{stat.st_mtime_ns}\n".encode())
  return digest.hexdigest()[:10]


class _FolderBuilder(tfds.dataset_builders.AdhocBuilder, skip_registration=True):
  """An `AdhocBuilder` whose `(image, label)` pairs are its supervised keys (`as_supervised`)."""

  def _info(self):
    info = super()._info()
    return tfds.core.DatasetInfo(builder=self, description=info.description,
                                 features=info.features, supervised_keys=("image", "label"))


def prepare(directory: str, *, image_shape: Sequence[int], resize: str = "pad",
            validation_fraction: float = 0.2,
            data_dir: Optional[str] = None) -> tfds.core.DatasetBuilder:
  """Checks the folder and returns its TFDS builder, prepared into `data_dir` (once per
  folder content and settings) with every image at `image_shape`.

  Args:
    directory: the folder (see the module docstring for its layouts).
    image_shape: `(height, width, channels)` every image is prepared at.
    resize: how an image is fitted to `image_shape` (`FOLDER_RESIZE`).
    validation_fraction: share of each class held out as `valid` when there is no valid split.
    data_dir: TFDS data directory.

  Raises:
    FolderError: see the module docstring.
  """
  image_shape = tuple(int(v) for v in image_shape)
  if len(image_shape) != 3 or image_shape[2] not in (1, 3) or min(image_shape) < 1:
    raise FolderError("Invalid value for `folder_image_shape`: expected (height, width, "
                      f"channels) with 1 or 3 channels. Received: {image_shape!r}")
  if resize not in FOLDER_RESIZE:
    raise FolderError(f"Invalid value for `folder_resize`: expected one of "
                      f"{list(FOLDER_RESIZE)}. Received: {resize!r}")
  folder = scan(directory, validation_fraction)
  shape_name = "x".join(map(str, image_shape))
  settings = f"{folder.layout}:{shape_name}:{resize}:{validation_fraction}:{SPLIT_SEED}"
  base = re.sub(r"[^a-z0-9]+", "_", os.path.basename(os.path.abspath(directory)).lower())
  config = (f"{base.strip('_') or 'data'}_{shape_name}_{resize}_"
            f"{_fingerprint(folder, settings)}")
  features = tfds.features.FeaturesDict({
      "image": tfds.features.Image(shape=image_shape),
      "label": tfds.features.ClassLabel(names=folder.class_names),
      "image/filename": tfds.features.Text(),
  })
  # The exported graphs prepare a photo with the same function (`photo_preprocessing`).
  load = tf.function(lambda raw: images_lib.prepare_image_bytes(raw, image_shape, resize)[0],
                     input_signature=[tf.TensorSpec([], tf.string)])

  def examples(files):
    for i, (path, label) in enumerate(files):
      try:
        raw = runtime.read_image_file(path)
      except errors.InvalidValueError as e:
        raise FolderError(f"{path}: {e}") from None
      try:
        image = load(tf.constant(raw)).numpy()
      except tf.errors.InvalidArgumentError as e:
        if runtime.budget_line(e):
          raise FolderError(f"{path}: {runtime.budget_line(e)}") from None
        reason = (e.message or "undecodable").strip().splitlines()[0][:160]
        raise FolderError(f"{path}: not a readable image ({len(raw)} bytes; corrupt or "
                          f"truncated?): {reason}") from None
      yield i, {"image": image, "label": label,
                "image/filename": os.path.relpath(path, directory)}

  builder = _FolderBuilder(
      name="image_folder", version="1.0.0", config=config, features=features,
      data_dir=data_dir, split_datasets={s: examples(f) for s, f in folder.splits.items()},
      description=f"Image folder {os.path.abspath(directory)} ({folder.layout} layout)")
  if not builder.is_prepared():
    counts = ", ".join(f"{s} {len(f)}" for s, f in folder.splits.items())
    log.info("Preparing %s from %s (%d classes; %s images) into %s (once) ...",
             builder.info.full_name, directory, len(folder.class_names), counts,
             shown_path(builder.data_dir_root))
    # What TFDS creates for this dataset (its folder, or only this config's): removed if
    # preparing fails, so that a bad file leaves nothing half-written behind.
    dataset_dir = os.path.join(builder.data_dir_root, builder.name)
    created = dataset_dir if not os.path.exists(dataset_dir) else os.path.dirname(
        os.fspath(builder.data_dir))
    try:
      with quiet_tfds():
        builder.download_and_prepare()
    except BaseException:
      shutil.rmtree(created, ignore_errors=True)
      raise
  return builder
