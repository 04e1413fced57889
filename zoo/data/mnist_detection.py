"""`mnist_detection`: a tensorflow-datasets builder of canvases with real MNIST digits.

Prepared once into `--data_dir` from the four original MNIST files (`--manual_dir`, the
same folder the classifiers use), offline and deterministically: the same files and
version give byte-identical canvases.

Each example is a 128x128 grayscale canvas (a black background, like MNIST's) holding one
to `MAX_DIGITS` digits at random positions, each scaled by a random factor in
`SCALE_RANGE`, with tight boxes around its ink (every pixel above 0) and its label. Digits
never overlap (their boxes keep `GAP_PIXELS` apart). Train canvases use only MNIST
training digits, test canvases only MNIST test digits, each digit once before any repeats.

Features follow TFDS's detection datasets (`voc`, `coco`): `image`, `image/id`, and
`objects` with `bbox` (normalized `[ymin, xmin, ymax, xmax]`, see `zoo.boxes`) and `label`.
"""

from __future__ import annotations

import gzip
import os

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from zoo import errors

CANVAS_PIXELS = 128
MAX_DIGITS = 5
SCALE_RANGE = (0.8, 2.0)
GAP_PIXELS = 1
NUM_CANVASES = {"train": 20_000, "test": 2_000}
# The four original MNIST files, as their download URLs name them (and TFDS's `manual_dir`
# expects them): split -> (images, labels).
MNIST_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
               "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
_SEEDS = {"train": 1, "test": 2}


def read_idx(path: str) -> np.ndarray:
  """An MNIST idx file (gzipped) -> numpy array (uint8 images [N, 28, 28] or labels [N])."""
  with gzip.open(path, "rb") as f:
    raw = f.read()
  dims = raw[3]
  shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
  return np.frombuffer(raw, np.uint8, offset=4 + 4 * dims).reshape(shape)


def read_mnist(manual_dir: str, split: str):
  """MNIST's `split` (`train` or `test`) from the original files in `manual_dir`: uint8
  digits [N, 28, 28] and their labels [N].

  Raises:
    zoo.errors.InvalidValueError: `manual_dir` lacks one of the four files (all are named).
  """
  missing = [f for pair in MNIST_FILES.values() for f in pair
             if not os.path.exists(os.path.join(manual_dir, f))]
  if missing:
    raise errors.InvalidValueError(
        f"Invalid value for `manual_dir`: {manual_dir!r} lacks {missing}. Expected the "
        f"four original MNIST files.")
  images_file, labels_file = MNIST_FILES[split]
  return (read_idx(os.path.join(manual_dir, images_file)),
          read_idx(os.path.join(manual_dir, labels_file)))


def check_new_folder(output_dir: str) -> None:
  """The `write_*` functions write a new folder, never into an existing one."""
  if os.path.exists(output_dir):
    raise errors.InvalidValueError(
        f"Invalid value for `output_dir`: {output_dir!r} exists; pick a new folder.")


def make_canvases(images: np.ndarray, labels: np.ndarray, num_canvases: int, seed: int):
  """Yields `(canvas uint8 [128, 128, 1], boxes float32 [N, 4] normalized yxyx,
  labels int64 [N])`, deterministically from `seed`."""
  rng = np.random.default_rng(seed)
  order = rng.permutation(len(images))
  cursor = 0
  for _ in range(num_canvases):
    canvas = np.zeros((CANVAS_PIXELS, CANVAS_PIXELS), np.uint8)
    boxes, digit_labels, taken = [], [], []
    for _ in range(rng.integers(1, MAX_DIGITS + 1)):
      index = order[cursor % len(order)]
      cursor += 1
      size = int(round(28 * rng.uniform(*SCALE_RANGE)))
      digit = np.asarray(Image.fromarray(images[index]).resize((size, size), Image.BILINEAR))
      rows = np.flatnonzero(digit.max(axis=1))
      cols = np.flatnonzero(digit.max(axis=0))
      if not len(rows):
        continue
      digit = digit[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]  # Crop to the ink.
      h, w = digit.shape
      for _ in range(50):  # Rejection sampling of a free spot; give the digit up otherwise.
        top = int(rng.integers(0, CANVAS_PIXELS - h + 1))
        left = int(rng.integers(0, CANVAS_PIXELS - w + 1))
        if all(top + h + GAP_PIXELS <= t or t + th + GAP_PIXELS <= top
               or left + w + GAP_PIXELS <= l or l + tw + GAP_PIXELS <= left
               for t, l, th, tw in taken):
          break
      else:
        continue
      taken.append((top, left, h, w))
      canvas[top:top + h, left:left + w] = digit
      boxes.append([top / CANVAS_PIXELS, left / CANVAS_PIXELS, (top + h) / CANVAS_PIXELS,
                    (left + w) / CANVAS_PIXELS])
      digit_labels.append(int(labels[index]))
    yield (canvas[..., None], np.asarray(boxes, np.float32).reshape(-1, 4),
           np.asarray(digit_labels, np.int64))


class MnistDetection(tfds.core.GeneratorBasedBuilder):
  """Canvases of real MNIST digits with their boxes (see the module docstring)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "20,000 train and 2,000 test canvases of 128x128 pixels."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Pass --manual_dir=DIR, a folder holding the four original MNIST files "
      "(train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
      "t10k-labels-idx1-ubyte.gz), e.g. --manual_dir=../shared/data/mnist.")

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(CANVAS_PIXELS, CANVAS_PIXELS, 1)),
            "image/id": tfds.features.Scalar(np.int64),
            "objects": tfds.features.Sequence({
                "bbox": tfds.features.BBoxFeature(),
                "label": tfds.features.ClassLabel(names=[str(d) for d in range(10)]),
            }),
        }),
        supervised_keys=None,
        homepage="http://yann.lecun.com/exdb/mnist/",
    )

  def _split_generators(self, dl_manager):
    return {split: self._generate_examples(os.fspath(dl_manager.manual_dir), split)
            for split in NUM_CANVASES}

  def _generate_examples(self, manual_dir, split):
    images, labels = read_mnist(manual_dir, split)
    canvases = make_canvases(images, labels, NUM_CANVASES[split], _SEEDS[split])
    for i, (canvas, boxes, digit_labels) in enumerate(canvases):
      yield i, {"image": canvas, "image/id": i,
                "objects": {"bbox": boxes, "label": digit_labels}}


def write_coco_photos(manual_dir: str, output_dir: str, *, num_images=None, seed: int = 0,
                      min_side: int = 160, max_side: int = 320, jpeg_quality: int = 90) -> str:
  """Writes a photo-like COCO-format folder in Roboflow's layout from the real MNIST digits:
  `output_dir/{train,valid}/` with RGB JPEGs of random sizes and `_annotations.coco.json`.

  Each image is a `make_canvases` canvas stretched to a random size between `min_side`
  and `max_side` pixels per side, its digits painted in a random colour over a random
  colour gradient with noise, so that a detector meets what photos bring (colour, any
  size and aspect ratio, JPEG artifacts) on data anyone can rebuild offline. Train images
  use MNIST training digits, valid images MNIST test digits.

  Args:
    num_images: `{"train": N, "valid": M}` (default 2,000 and 400).
  """
  import json
  check_new_folder(output_dir)
  num_images = num_images or {"train": 2000, "valid": 400}
  rng = np.random.default_rng(seed)
  sources = {"train": "train", "valid": "test"}
  categories = [{"id": d + 1, "name": str(d), "supercategory": "digits"} for d in range(10)]
  for split, count in num_images.items():
    digits, labels = read_mnist(manual_dir, sources[split])
    folder = os.path.join(output_dir, split)
    os.makedirs(folder, exist_ok=True)
    images, annotations = [], []
    canvases = make_canvases(digits, labels, count, seed + _SEEDS[sources[split]])
    for i, (canvas, boxes, digit_labels) in enumerate(canvases):
      h, w = (int(v) for v in rng.integers(min_side, max_side + 1, size=2))
      ink = np.asarray(Image.fromarray(canvas[..., 0]).resize((w, h), Image.BILINEAR),
                       np.float32)[..., None] / 255.0
      corners = rng.uniform(0, 255, size=(2, 3))
      ramp = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
      background = corners[0] * (1 - ramp) + corners[1] * ramp + rng.normal(0, 12, (h, w, 3))
      colour = rng.uniform(0, 255, size=3)
      while np.abs(colour - corners.mean(axis=0)).sum() < 150:  # Keep the ink visible.
        colour = rng.uniform(0, 255, size=3)
      photo = np.clip(background * (1 - ink) + colour * ink, 0, 255).astype(np.uint8)
      name = f"{split}_{i:05d}.jpg"
      Image.fromarray(photo).save(os.path.join(folder, name), quality=jpeg_quality)
      images.append({"id": i, "file_name": name, "height": h, "width": w})
      for (y0, x0, y1, x1), label in zip(boxes, digit_labels):
        box = [float(x0 * w), float(y0 * h), float((x1 - x0) * w), float((y1 - y0) * h)]
        annotations.append({"id": len(annotations), "image_id": i,
                            "category_id": int(label) + 1, "bbox": box,
                            "area": box[2] * box[3], "iscrowd": 0})
    with open(os.path.join(folder, "_annotations.coco.json"), "w") as f:
      json.dump({"images": images, "annotations": annotations, "categories": categories}, f)
  return output_dir
