"""COCO-format folders the tests write: colored squares and bars on noisy backgrounds, JPEG
and PNG, gray or RGB, of several sizes, in Roboflow's or COCO's own layout."""

import json
import os

import numpy as np
from PIL import Image

# Roboflow's placeholder category first (id 0, never used), as its exports have it.
CATEGORIES = [{"id": 0, "name": "shapes", "supercategory": "none"},
              {"id": 1, "name": "square", "supercategory": "shapes"},
              {"id": 2, "name": "bar", "supercategory": "shapes"}]


def annotation_path(root, split, layout):
  if layout == "roboflow":
    return os.path.join(root, split, "_annotations.coco.json")
  return os.path.join(root, "annotations", f"instances_{split}.json")


def write(root, *, layout="roboflow", splits=("train", "valid"), images_per_split=8,
          seed=0, gray=False) -> str:
  """Writes the folder; returns `root`. Every image has one square (category 1) and one
  bar (category 2) that do not overlap."""
  rng = np.random.default_rng(seed)
  for split in splits:
    image_dir = os.path.join(root, split)
    os.makedirs(image_dir, exist_ok=True)
    os.makedirs(os.path.dirname(annotation_path(root, split, layout)), exist_ok=True)
    images, annotations = [], []
    for i in range(images_per_split):
      h, w = int(rng.integers(64, 80)), int(rng.integers(96, 140))  # Wider than tall.
      pixels = (rng.random((h, w, 3)) * 60).astype(np.uint8)
      x, y = int(rng.integers(0, w // 2 - 20)), int(rng.integers(0, h - 20))
      pixels[y:y + 20, x:x + 20] = (255, 200, 0)
      bx, by = int(rng.integers(w // 2, w - 8)), int(rng.integers(0, h - 30))
      pixels[by:by + 30, bx:bx + 8] = (0, 160, 255)
      name = f"{split}_{i}.{'jpg' if i % 2 else 'png'}"
      picture = Image.fromarray(pixels)
      (picture.convert("L") if gray else picture).save(os.path.join(image_dir, name))
      images.append({"id": i, "file_name": name, "height": h, "width": w})
      for cat, box in ((1, [x, y, 20, 20]), (2, [bx, by, 8, 30])):
        annotations.append({"id": len(annotations), "image_id": i, "category_id": cat,
                            "bbox": box, "area": box[2] * box[3], "iscrowd": 0})
    with open(annotation_path(root, split, layout), "w") as f:
      json.dump({"images": images, "annotations": annotations, "categories": CATEGORIES}, f)
  return root


def edit(root, split, layout, change):
  """Applies `change(document)` to a split's annotation file."""
  path = annotation_path(root, split, layout)
  with open(path) as f:
    document = json.load(f)
  change(document)
  with open(path, "w") as f:
    json.dump(document, f)
  return path
