"""Pictures made for people: boxes with class names and scores drawn on images
(TensorBoard, `scripts/predict.py`), image grids and confusion-matrix heat maps.

Pillow draws the text (its built-in bitmap font: nothing to download), which
`tf.image.draw_bounding_boxes` cannot.
"""

from __future__ import annotations

import json
import os
from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw

PREDICTION_COLOR = (255, 64, 64)
GROUND_TRUTH_COLOR = (64, 220, 64)


def draw_detections(image: np.ndarray, boxes_yxyx, classes, scores, class_names: Sequence[str],
                    *, ground_truth_yxyx: Optional[np.ndarray] = None,
                    min_score: float = 0.3, scale: int = 1) -> np.ndarray:
  """Draws detections (red: `name score`) and optional ground truth (green) on an image.

  Args:
    image: uint8 [H, W, C] (C = 1 or 3).
    boxes_yxyx: `[K, 4]` normalized `[ymin, xmin, ymax, xmax]` of the image.
    classes, scores: `[K]` class indices and scores; boxes under `min_score` are skipped.
    class_names: names by class index.
    ground_truth_yxyx: `[N, 4]` normalized boxes drawn in green under the detections.
    scale: integer upscaling first (small canvases get readable labels).

  Returns:
    uint8 RGB [H * scale, W * scale, 3].
  """
  array = np.asarray(image, np.uint8)
  if array.ndim == 3 and array.shape[-1] == 1:
    array = array[..., 0]
  picture = Image.fromarray(array).convert("RGB")
  if scale != 1:
    picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
  w, h = picture.size
  draw = ImageDraw.Draw(picture)

  def rectangle(box, color):
    y0, x0, y1, x1 = (float(v) for v in box)
    draw.rectangle([x0 * w, y0 * h, x1 * w, y1 * h], outline=color, width=max(1, scale))
    return x0 * w, y0 * h

  if ground_truth_yxyx is not None:
    for box in np.asarray(ground_truth_yxyx).reshape(-1, 4):
      rectangle(box, GROUND_TRUTH_COLOR)
  for box, cls, score in zip(np.asarray(boxes_yxyx).reshape(-1, 4), classes, scores):
    if score < min_score:
      continue
    x, y = rectangle(box, PREDICTION_COLOR)
    name = class_names[int(cls)] if 0 <= int(cls) < len(class_names) else str(int(cls))
    text = f"{name} {score:.2f}"
    left, top, right, bottom = draw.textbbox((x, y), text)
    y_text = max(y - (bottom - top) - 2, 0)
    draw.rectangle([x, y_text, x + right - left + 2, y_text + bottom - top + 2],
                   fill=PREDICTION_COLOR)
    draw.text((x + 1, y_text), text, fill=(255, 255, 255))
  return np.asarray(picture)


def fit_square(image: np.ndarray, side: int) -> np.ndarray:
  """An RGB image resized to fit `side x side` (aspect ratio kept) on a black square, so
  that images of different sizes can share one TensorBoard grid."""
  picture = Image.fromarray(np.asarray(image, np.uint8))
  if max(picture.size) != side:
    scale = side / max(picture.size)
    picture = picture.resize((max(1, round(picture.width * scale)),
                              max(1, round(picture.height * scale))), Image.BILINEAR)
  square = Image.new("RGB", (side, side))
  square.paste(picture, (0, 0))
  return np.asarray(square)


def save_detections(result: dict, image: np.ndarray, class_names: Sequence[str],
                    output_dir: str) -> dict:
  """Writes one `zoo.tasks.detection.Detector.detect_files` result as `<stem>_detections.png`
  (`image`, the file's decoded uint8 pixels, with its detections' boxes, names and scores
  drawn) and `<stem>_detections.json` into `output_dir`; returns `{"png": path, "json":
  path}`."""
  os.makedirs(output_dir, exist_ok=True)
  stem = os.path.join(output_dir, os.path.splitext(os.path.basename(result["file"]))[0]
                      + "_detections")
  found = result["detections"]
  picture = draw_detections(
      image, np.asarray([d["box_yxyx"] for d in found]).reshape(-1, 4),
      [d["class"] for d in found], [d["score"] for d in found], class_names, min_score=0.0,
      scale=max(1, 256 // max(image.shape[:2])))
  Image.fromarray(picture).save(stem + ".png")
  with open(stem + ".json", "w") as f:
    json.dump(result, f, indent=2)
  return {"png": stem + ".png", "json": stem + ".json"}


def confusion_matrix_image(matrix: np.ndarray, cell_pixels: int = 16) -> np.ndarray:
  """Renders a confusion matrix as an RGB heat map [1, H, W, 3] (rows true, columns predicted).

  Each row is normalized by its count; the diagonal is green, errors red.
  """
  m = np.asarray(matrix, dtype=np.float64)
  rows = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
  diag = np.eye(len(m), dtype=bool)
  # Errors are scaled up x5 so that a 2 % confusion is visible next to a 98 % diagonal.
  red = np.where(diag, 0.0, np.minimum(rows * 5, 1.0))
  green = np.where(diag, rows, 0.0)
  img = np.stack([red, green, np.zeros_like(rows)], axis=-1)
  img = np.kron(img, np.ones((cell_pixels, cell_pixels, 1)))
  return (img[None] * 255).astype(np.uint8)


def image_grid(images: np.ndarray, rows: int) -> np.ndarray:
  """uint8 images [N, H, W, C] -> one uint8 grid image [rows * H, ceil(N / rows) * W, C]."""
  images = np.asarray(images)
  n, h, w, c = images.shape
  cols = -(-n // rows)
  grid = np.zeros((rows * h, cols * w, c), dtype=images.dtype)
  for i, image in enumerate(images):
    r, col = divmod(i, cols)
    grid[r * h:(r + 1) * h, col * w:(col + 1) * w] = image
  return grid
