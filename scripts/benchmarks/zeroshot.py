"""BENCHMARKS.md, "ImageNet classifiers zero-shot": the family's ImageNet-trained networks
(`zoo.models.efficientnet_lite.efficientnet_lite(variant, weights="imagenet")`, no
training) read a folder of photos whose classes are ImageNet classes (ants and bees:
ImageNet's "ant" and "bee"), each photo scored among all 1,000 classes
(`zoo.imagenet`): top-1 and top-5 accuracy, and which of the folder's classes scores higher.

Two ways of fitting a photo to the network's square input are compared:
  crop          the zoo's `crop` (`zoo.data.images.fit_image`): the centre at the input's
                aspect (the whole shorter side), resized (bilinear, antialiased);
  crop_padding  the EfficientNet reference's evaluation crop: the centre square of side
                `size / (size + 32)` of the shorter side, resized (bicubic).
The way is chosen on the folder's `train/` split, which the networks never saw (zero-shot:
every split is held out), and the figure to report is `val/`'s."""

from __future__ import annotations

import os
import time

import numpy as np
import tensorflow as tf

from benchmarks import report
from zoo import imagenet
from zoo.data import images as images_lib
from zoo.models import backbones, efficientnet_lite

WAYS = ("crop", "crop_padding")
CROP_PADDING = 32  # Pixels, the reference's `CROP_PADDING`.


def fit(image: tf.Tensor, size: int, way: str) -> tf.Tensor:
  """A decoded uint8 photo [H, W, 3] -> float32 [size, size, 3] in [0, 1] by `way`."""
  if way == "crop":
    return tf.cast(images_lib.fit_image(image, (size, size, 3), "crop"), tf.float32) / 255.0
  if way != "crop_padding":
    raise ValueError(f"Invalid value for `way`: expected one of {list(WAYS)}. Received: {way!r}")
  h, w = tf.shape(image)[0], tf.shape(image)[1]
  side = tf.cast(tf.round(size / (size + CROP_PADDING)
                          * tf.cast(tf.minimum(h, w), tf.float32)), tf.int32)
  top, left = (h - side) // 2, (w - side) // 2
  x = tf.image.resize(tf.cast(image[top:top + side, left:left + side], tf.float32),
                      (size, size), method="bicubic")
  return tf.clip_by_value(x, 0.0, 255.0) / 255.0


def photos(split_dir: str, classes: dict) -> list[tuple[str, int]]:
  """`[(path, ImageNet index)]` of the photos in `split_dir/<folder class>/` for each
  folder class of `classes` (`{"ants": "ant"}`: folder class -> ImageNet name)."""
  index = {name: i for i, name in enumerate(imagenet.class_names())}
  items = []
  for folder_class, name in classes.items():
    if name not in index:
      raise ValueError(f"{name!r} is not an ImageNet class name (zoo.imagenet.class_names()).")
    directory = os.path.join(split_dir, folder_class)
    items += [(os.path.join(directory, f), index[name]) for f in sorted(os.listdir(directory))
              if f.lower().endswith((".jpg", ".jpeg", ".png"))]
  return items


def scores(model, items, size: int, way: str, batch: int = 32) -> np.ndarray:
  """The model's 1,000 logits of each photo, fitted by `way`."""
  out = []
  for start in range(0, len(items), batch):
    pixels = [fit(images_lib.decode_image(tf.io.read_file(path)), size, way)
              for path, _ in items[start:start + batch]]
    out.append(np.asarray(model(tf.stack(pixels), training=False)))
  return np.concatenate(out)


def measure(logits: np.ndarray, items, class_indexes: list[int]) -> dict:
  """Top-1 and top-5 among the 1,000 classes, and the folder's classes scored alone."""
  targets = np.array([t for _, t in items])
  top5 = np.argsort(-logits, axis=-1)[:, :5]
  among = np.array(class_indexes)[np.argmax(logits[:, class_indexes], axis=-1)]
  return {"photos": int(len(items)),
          "top1": float(np.mean(top5[:, 0] == targets)),
          "top5": float(np.mean(np.any(top5 == targets[:, None], axis=-1))),
          "between": float(np.mean(among == targets))}


def main(flags, workdir: str, command: str) -> tuple[str, str]:
  os.makedirs(workdir, exist_ok=True)
  classes = dict(pair.split(":", 1) for pair in flags.zeroshot_classes)
  index = {name: i for i, name in enumerate(imagenet.class_names())}
  class_indexes = [index[name] for name in classes.values()]
  rows = []
  for variant in flags.zeroshot_backbones or [n for n in backbones.names()
                                              if backbones.get(n).imagenet]:
    size = backbones.get(variant).input_size
    model = efficientnet_lite.efficientnet_lite(variant, weights="imagenet")
    for split in ("train", "val"):
      items = photos(os.path.join(flags.zeroshot, split), classes)
      # Every way on train; on val only the way train chose (ties: `crop`, listed first).
      ways = WAYS if split == "train" else [max(
          (r for r in rows if r["backbone"] == variant), key=lambda r: r["top1"])["way"]]
      for way in ways:
        start = time.perf_counter()
        logits = scores(model, items, size, way)
        rows.append({"backbone": variant, "size": size, "split": split, "way": way,
                     "seconds": time.perf_counter() - start,
                     **measure(logits, items, class_indexes)})
  report.save_json(workdir, "zeroshot.json", rows)
  as_imagenet = ", ".join(f'{k} as ImageNet\'s "{v}"' for k, v in classes.items())
  lines = report.header(command) + [
      "",
      f"Data: the photos of `{flags.zeroshot}` ({as_imagenet}), "
      "each scored among ImageNet's 1,000 classes by the network with its ImageNet "
      "weights and no training. Top-1/top-5: the photo's class is the first / among the "
      "first five of 1,000; between: the higher of the folder's classes alone. `crop`: the "
      "zoo's centre crop at the input's aspect, bilinear; `crop_padding`: the reference's "
      f"centre {{size}}/({{size}}+{CROP_PADDING}) of the shorter side, bicubic. The way is "
      "chosen on `train` (top-1; the networks never saw these photos either), and `val` "
      "is read once, with the chosen way: the figure to quote.",
      "",
      "| backbone | input | split | fitting | photos | top-1 | top-5 | between | seconds |",
      "|---|---|---|---|---|---|---|---|---|",
  ]
  chosen = {r["backbone"]: r["way"] for r in rows if r["split"] == "val"}
  for r in rows:
    mark = " (chosen)" if r["way"] == chosen[r["backbone"]] else ""
    lines.append(f"| `{r['backbone']}` | {r['size']} | {r['split']} | {r['way']}{mark} | "
                 f"{r['photos']} | {report.pct(r['top1'])} | {report.pct(r['top5'])} | "
                 f"{report.pct(r['between'])} | {r['seconds']:.0f} |")
  return flags.zeroshot_section, "\n".join(lines) + "\n"
