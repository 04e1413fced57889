"""Photo-like pictures of real MNIST digits: how a digit reaches a model from a phone or a
scanner, for measuring what a classifier reads from them (tests, benchmarks).

Each picture is one digit (28x28, light on dark as MNIST stores it) scaled to a random
size and painted at a random place on a page of a random size, as dark ink on light paper
or light ink on a dark page, under a lighting gradient, with or without camera noise,
saved as a JPEG. The digit keeps its label.
"""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image

from zoo.data import mnist_detection


def make_digit_photos(digits: np.ndarray, labels: np.ndarray, *, seed: int = 0,
                      page_pixels=(300, 900), digit_pixels=(60, 260),
                      dark_page_fraction: float = 0.3, noise_fraction: float = 0.5,
                      noise_sd: float = 12.0) -> list[tuple[bytes, int, dict]]:
  """`(jpeg bytes, label, how)` for each digit, deterministically from `seed`.

  Args:
    digits: uint8 [N, 28, 28] or [N, 28, 28, 1], light digits on black (MNIST).
    labels: int [N].
    seed: the pictures are a function of the digits and this.
    page_pixels: range of the page's width and height (each drawn), in pixels.
    digit_pixels: range of the side the 28x28 digit frame is scaled to, in pixels
      (capped at 80 % of the page's shorter side).
    dark_page_fraction: fraction of pages that are dark with light ink.
    noise_fraction: fraction of pictures with Gaussian noise of `noise_sd` (0-255 levels).

  Returns:
    One tuple per digit; `how` records the page size, digit size, position and whether the
    page is dark and noisy.
  """
  rng = np.random.default_rng(seed)
  digits = np.asarray(digits).reshape(-1, 28, 28)
  photos = []
  for digit, label in zip(digits, np.asarray(labels)):
    width, height = (int(v) for v in rng.integers(page_pixels[0], page_pixels[1] + 1, 2))
    side = int(min(rng.integers(digit_pixels[0], digit_pixels[1] + 1),
                   0.8 * min(width, height)))
    top, left = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
    dark = bool(rng.random() < dark_page_fraction)
    noisy = bool(rng.random() < noise_fraction)
    paper = rng.uniform(0, 60, 3) if dark else rng.uniform(170, 255, 3)
    ink = rng.uniform(190, 255, 3) if dark else rng.uniform(0, 80, 3)
    # Lighting: the paper's level drifts by up to 30 levels across the page.
    gy, gx = rng.uniform(-15, 15, 2)
    ys = np.linspace(-1, 1, height)[:, None, None]
    xs = np.linspace(-1, 1, width)[None, :, None]
    page = np.clip(paper + gy * ys + gx * xs, 0, 255)
    alpha = np.zeros((height, width, 1))
    scaled = Image.fromarray(digit).resize((side, side), Image.BILINEAR)
    alpha[top:top + side, left:left + side, 0] = np.asarray(scaled, np.float64) / 255.0
    picture = page * (1 - alpha) + ink * alpha
    if noisy:
      picture = picture + rng.normal(0, noise_sd, picture.shape)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(np.round(picture), 0, 255).astype(np.uint8)).save(
        buffer, format="JPEG", quality=int(rng.integers(75, 96)))
    photos.append((buffer.getvalue(), int(label),
                   {"page": [height, width], "digit_pixels": side, "top_left": [top, left],
                    "dark_page": dark, "noisy": noisy}))
  return photos


def write_photo_folder(manual_dir: str, output_dir: str, *, num_images=None, seed: int = 0,
                       page_pixels=(64, 192), digit_pixels=(40, 160)) -> str:
  """Writes a class-per-folder dataset of photo-like digits for `--dataset=folder:DIR`:
  `output_dir/{train,valid}/<digit>/NNNNN.jpg`, RGB JPEGs of `make_digit_photos` (coloured
  paper and ink, lighting gradient, noise, any size and place) on smaller pages, train from
  MNIST's training digits (the first N) and valid from its test digits (the first M).

  Args:
    manual_dir: folder holding the four original MNIST files.
    num_images: `{"train": N, "valid": M}` (default 5,000 and 1,000).
    seed: the pictures are a function of the digits and this.
    page_pixels, digit_pixels: see `make_digit_photos`.
  """
  mnist_detection.check_new_folder(output_dir)
  num_images = num_images or {"train": 5000, "valid": 1000}
  sources = {"train": "train", "valid": "test"}
  for i, (split, count) in enumerate(num_images.items()):
    digits, labels = mnist_detection.read_mnist(manual_dir, sources[split])
    digits, labels = digits[:count], labels[:count]
    photos = make_digit_photos(digits, labels, seed=seed + i, page_pixels=page_pixels,
                               digit_pixels=digit_pixels)
    for j, (jpeg, label, _) in enumerate(photos):
      folder = os.path.join(output_dir, split, str(label))
      os.makedirs(folder, exist_ok=True)
      with open(os.path.join(folder, f"{split}_{j:05d}.jpg"), "wb") as f:
        f.write(jpeg)
  return output_dir


DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def write_digit_folder(manual_dir: str, output_dir: str, *, kind: str = "words",
                       train_images: int = 6000, valid_images: int = 1000) -> str:
  """Writes MNIST's own digits (28x28 gray PNGs) as a folder of classes a preset trained on
  MNIST does not know by name, for measuring fine-tuning (`--dataset=folder:DIR`):
  `output_dir/{train,valid}/<class>/NNNNN.png`, train from MNIST's training digits and
  valid from its test digits.

  Args:
    manual_dir: folder holding the four original MNIST files.
    kind: `words`: the digits under their English names (`zero` ... `nine`; sorted, the
      folder's class 0 is `eight`), the same classes as the preset's `0` ... `9` under other
      names; `turned`: each digit turned a quarter turn clockwise, classes `turned_0` ...
      `turned_9`: ten classes the preset never saw.
    train_images: `words`: the first N training digits; `turned`: the first N / 10 of each
      digit (a small, balanced folder).
    valid_images: the first N test digits.
  """
  if kind not in ("words", "turned"):
    raise ValueError(f"Invalid value for `kind`: expected 'words' or 'turned'. "
                     f"Received: kind={kind!r}")
  mnist_detection.check_new_folder(output_dir)
  for split, source, count in (("train", "train", train_images),
                               ("valid", "test", valid_images)):
    digits, labels = mnist_detection.read_mnist(manual_dir, source)
    digits, labels = digits.reshape(-1, 28, 28), np.asarray(labels)
    if kind == "turned" and split == "train":
      chosen = np.sort(np.concatenate([np.flatnonzero(labels == d)[:count // 10]
                                       for d in range(10)]))
    else:
      chosen = np.arange(count)
    for j in chosen:
      digit, label = digits[j], int(labels[j])
      name = DIGIT_WORDS[label] if kind == "words" else f"turned_{label}"
      picture = np.rot90(digit, k=-1) if kind == "turned" else digit
      folder = os.path.join(output_dir, split, name)
      os.makedirs(folder, exist_ok=True)
      Image.fromarray(np.ascontiguousarray(picture)).save(
          os.path.join(folder, f"{split}_{j:05d}.png"))
  return output_dir
