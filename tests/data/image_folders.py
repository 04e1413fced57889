"""Folders of labelled images the tests write: a filled circle, square or triangle per
image, of several sizes and aspects, gray or RGB, PNG or JPEG, light on dark or dark on
light, in the split layout (`train/`, `val/` or `valid/`, `test/`) or the class layout."""

import os

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ("circle", "square", "triangle")


def shape_image(kind: str, rng, size=None) -> Image.Image:
  """One picture of `kind` (gray or RGB by chance, wider or taller, 20-80 px)."""
  w, h = size or (int(rng.integers(20, 80)), int(rng.integers(20, 80)))
  rgb = bool(rng.integers(2))
  dark_paper = bool(rng.integers(2))
  paper = (20, 20, 40) if dark_paper else (235, 235, 225)
  ink = tuple(int(v) for v in rng.integers(150, 256, 3)) if dark_paper else (
      tuple(int(v) for v in rng.integers(0, 90, 3)))
  image = Image.new("RGB", (w, h), paper)
  draw = ImageDraw.Draw(image)
  s = 0.3 * min(w, h)
  cx, cy = w / 2 + rng.uniform(-0.1, 0.1) * w, h / 2 + rng.uniform(-0.1, 0.1) * h
  if kind == "circle":
    draw.ellipse([cx - s, cy - s, cx + s, cy + s], fill=ink)
  elif kind == "square":
    draw.rectangle([cx - s, cy - s, cx + s, cy + s], fill=ink)
  else:
    draw.polygon([(cx, cy - s), (cx - s, cy + s), (cx + s, cy + s)], fill=ink)
  return image if rgb else image.convert("L")


def write_classes(root, per_class=6, *, classes=CLASSES, seed=0) -> str:
  """`root/<class>/*`: PNG and JPEG alternately."""
  rng = np.random.default_rng(seed)
  for c in classes:
    os.makedirs(os.path.join(root, c), exist_ok=True)
    for i in range(per_class):
      ext = "png" if i % 2 else "jpg"
      shape_image(c, rng).save(os.path.join(root, c, f"{c}_{i}.{ext}"))
  return root


def write_splits(root, *, splits=(("train", 6), ("val", 3)), classes=CLASSES, seed=0) -> str:
  """`root/<split>/<class>/*` for each `(split folder, images per class)`."""
  for i, (split, per_class) in enumerate(splits):
    write_classes(os.path.join(root, split), per_class, classes=classes, seed=seed + i)
  return root
