"""Boxes for detection: one internal format, anchors, the box coder, matching and NMS.

The internal format, everywhere in the zoo, is **normalized `[ymin, xmin, ymax, xmax]`**
(`yxyx`): fractions of the model's (square, letterboxed) input, as TensorFlow Datasets
stores boxes and as the TensorFlow Object Detection API returns `detection_boxes`.
Function names say the format they take or give. Converters sit at the edges: COCO JSON
(`coco_xywh_to_yxyx`, `yxyx_to_coco_xywh`: pixel `[x, y, width, height]`) and letterboxing
(`letterbox`, `unletterbox_yxyx`).

Everything here is TensorFlow ops (or numpy for the constant anchors), so the tf.data
pipeline, the training loss and the exported graphs (SavedModel and TFLite, built-in ops
only) share one definition.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf

from zoo import errors

# Scale factors of the box coder (TensorFlow Object Detection API's faster_rcnn_box_coder:
# y, x, h, w): the encoded deltas of matched anchors then have a spread near 1.
BOX_CODER_SCALES = (10.0, 10.0, 5.0, 5.0)
# Class target of an anchor matched to no object, and of one whose loss is ignored.
BACKGROUND, IGNORE = -1, -2


def anchors_yxyx(image_size: int, *, min_level: int, max_level: int,
                 size_in_strides: float, scales: Sequence[float],
                 aspect_ratios: Sequence[float]) -> np.ndarray:
  """RetinaNet anchors of a square `image_size` input, normalized `[ymin, xmin, ymax, xmax]`.

  Pyramid level `l` has stride `2**l` pixels and a `(image_size / 2**l)**2` grid; at every
  grid cell centre it has one anchor per (scale, aspect ratio), of area
  `(size_in_strides * 2**l * scale)**2` pixels and height / width = `aspect_ratio`.
  Order: level, then row, then column, then scale, then aspect ratio (the head's output
  order, see `zoo.models.detector`).

  Returns:
    float32 numpy array `[num_anchors, 4]`; anchors may reach outside [0, 1].
  """
  if image_size % 2 ** max_level:
    raise errors.InvalidValueError(
        f"Invalid value for `image_size`: expected a multiple of "
        f"2**max_level = {2 ** max_level}. Received: image_size={image_size}")
  out = []
  for level in range(min_level, max_level + 1):
    stride = 2 ** level
    cells = image_size // stride
    centres = (np.arange(cells, dtype=np.float64) + 0.5) * stride
    cy, cx = np.meshgrid(centres, centres, indexing="ij")
    shapes = []
    for scale in scales:
      for ratio in aspect_ratios:
        area = (size_in_strides * stride * scale) ** 2
        h, w = np.sqrt(area * ratio), np.sqrt(area / ratio)
        shapes.append((h, w))
    hw = np.asarray(shapes)  # [K, 2]
    cy = cy.reshape(-1, 1)
    cx = cx.reshape(-1, 1)
    level_boxes = np.stack([cy - hw[:, 0] / 2, cx - hw[:, 1] / 2,
                            cy + hw[:, 0] / 2, cx + hw[:, 1] / 2], axis=-1)  # [cells^2, K, 4]
    out.append(level_boxes.reshape(-1, 4))
  return (np.concatenate(out) / image_size).astype(np.float32)


def anchors_per_location(scales: Sequence[float], aspect_ratios: Sequence[float]) -> int:
  return len(scales) * len(aspect_ratios)


def _centre_size(boxes_yxyx):
  h = boxes_yxyx[..., 2] - boxes_yxyx[..., 0]
  w = boxes_yxyx[..., 3] - boxes_yxyx[..., 1]
  return boxes_yxyx[..., 0] + h / 2, boxes_yxyx[..., 1] + w / 2, h, w


def encode_yxyx(boxes_yxyx: tf.Tensor, anchors_yxyx: tf.Tensor) -> tf.Tensor:
  """Boxes -> regression targets relative to their anchors (centre offsets in anchor sizes,
  log size ratios, times `BOX_CODER_SCALES`). Shapes `[..., 4]`, broadcast."""
  by, bx, bh, bw = _centre_size(tf.convert_to_tensor(boxes_yxyx, tf.float32))
  ay, ax, ah, aw = _centre_size(tf.convert_to_tensor(anchors_yxyx, tf.float32))
  eps = 1e-8
  sy, sx, sh, sw = BOX_CODER_SCALES
  return tf.stack([sy * (by - ay) / ah, sx * (bx - ax) / aw,
                   sh * tf.math.log(tf.maximum(bh, eps) / ah),
                   sw * tf.math.log(tf.maximum(bw, eps) / aw)], axis=-1)


def decode_yxyx(deltas: tf.Tensor, anchors_yxyx: tf.Tensor) -> tf.Tensor:
  """The inverse of `encode_yxyx`: regression outputs -> normalized `[ymin, xmin, ymax, xmax]`."""
  deltas = tf.cast(deltas, tf.float32)
  ay, ax, ah, aw = _centre_size(tf.convert_to_tensor(anchors_yxyx, tf.float32))
  sy, sx, sh, sw = BOX_CODER_SCALES
  # Clip the log-size deltas: an untrained head must not overflow exp().
  limit = np.log(1000.0 / 16)
  cy = deltas[..., 0] / sy * ah + ay
  cx = deltas[..., 1] / sx * aw + ax
  h = tf.exp(tf.minimum(deltas[..., 2] / sh, limit)) * ah
  w = tf.exp(tf.minimum(deltas[..., 3] / sw, limit)) * aw
  return tf.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], axis=-1)


def area_yxyx(boxes_yxyx: tf.Tensor) -> tf.Tensor:
  return (tf.maximum(boxes_yxyx[..., 2] - boxes_yxyx[..., 0], 0.0)
          * tf.maximum(boxes_yxyx[..., 3] - boxes_yxyx[..., 1], 0.0))


def iou_yxyx(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
  """Pairwise intersection over union of `a [N, 4]` and `b [M, 4]` -> `[N, M]`."""
  a = tf.convert_to_tensor(a, tf.float32)[:, None, :]
  b = tf.convert_to_tensor(b, tf.float32)[None, :, :]
  inter_h = tf.maximum(tf.minimum(a[..., 2], b[..., 2]) - tf.maximum(a[..., 0], b[..., 0]), 0.)
  inter_w = tf.maximum(tf.minimum(a[..., 3], b[..., 3]) - tf.maximum(a[..., 1], b[..., 1]), 0.)
  inter = inter_h * inter_w
  union = area_yxyx(a) + area_yxyx(b) - inter
  return tf.math.divide_no_nan(inter, union)


def match_anchors_yxyx(boxes_yxyx: tf.Tensor, labels: tf.Tensor, anchors_yxyx: tf.Tensor, *,
                       positive_iou: float = 0.5, negative_iou: float = 0.4):
  """Training targets of one image: each anchor's box deltas and class.

  An anchor is positive (class = its object's label) when its IoU with an object is at
  least `positive_iou`, background (`BACKGROUND`) below `negative_iou`, and ignored
  (`IGNORE`) in between. Every object also claims its best-overlapping anchor, so that
  thin or small objects (a handwritten "1") are never left without a positive anchor.

  Args:
    boxes_yxyx: `[N, 4]` normalized objects (N may be 0).
    labels: `[N]` int class ids.
    anchors_yxyx: `[A, 4]`.

  Returns:
    `box_targets [A, 4]` (zeros where not positive) and `class_targets [A]` int32.
  """
  boxes_yxyx = tf.convert_to_tensor(boxes_yxyx, tf.float32)
  anchors_yxyx = tf.convert_to_tensor(anchors_yxyx, tf.float32)
  labels = tf.cast(labels, tf.int32)
  num_anchors = tf.shape(anchors_yxyx)[0]

  def no_objects():
    return tf.zeros([num_anchors, 4]), tf.fill([num_anchors], BACKGROUND)

  def with_objects():
    iou = iou_yxyx(anchors_yxyx, boxes_yxyx)  # [A, N]
    best = tf.argmax(iou, axis=1, output_type=tf.int32)
    best_iou = tf.reduce_max(iou, axis=1)
    # Each object's best anchor is positive for that object.
    forced = tf.argmax(iou, axis=0, output_type=tf.int32)  # [N]
    # Max, not scatter_nd's sum: two objects may share a best anchor (the later one wins).
    forced_object = tf.tensor_scatter_nd_max(tf.fill([num_anchors], -1), forced[:, None],
                                             tf.range(tf.shape(forced)[0]))
    forced_mask = forced_object >= 0
    best = tf.where(forced_mask, forced_object, best)
    positive = tf.logical_or(best_iou >= positive_iou, forced_mask)
    ignore = tf.logical_and(~positive, best_iou >= negative_iou)
    classes = tf.where(positive, tf.gather(labels, best),
                       tf.where(ignore, IGNORE, BACKGROUND))
    targets = encode_yxyx(tf.gather(boxes_yxyx, best), anchors_yxyx)
    targets = tf.where(positive[:, None], targets, 0.0)
    return targets, classes

  return tf.cond(tf.shape(boxes_yxyx)[0] > 0, with_objects, no_objects)


def coco_xywh_to_yxyx(boxes_xywh, height, width) -> np.ndarray:
  """COCO JSON pixel `[x, y, width, height]` -> normalized `[ymin, xmin, ymax, xmax]`."""
  b = np.asarray(boxes_xywh, np.float64).reshape(-1, 4)
  return np.stack([b[:, 1] / height, b[:, 0] / width, (b[:, 1] + b[:, 3]) / height,
                   (b[:, 0] + b[:, 2]) / width], axis=-1).astype(np.float32)


def yxyx_to_coco_xywh(boxes_yxyx, height, width) -> np.ndarray:
  """Normalized `[ymin, xmin, ymax, xmax]` -> COCO JSON pixel `[x, y, width, height]`."""
  b = np.asarray(boxes_yxyx, np.float64).reshape(-1, 4)
  return np.stack([b[:, 1] * width, b[:, 0] * height, (b[:, 3] - b[:, 1]) * width,
                   (b[:, 2] - b[:, 0]) * height], axis=-1)


def letterbox(image: tf.Tensor, size: int):
  """Resizes an HWC image (or a BHWC batch of one size) to fit `size x size` keeping its
  aspect ratio, padding the bottom and right with zeros. Returns `(float32 [.., size, size,
  C], valid [2])`, where `valid` is the (height, width) fraction of the square the image
  covers: a normalized box of the image is `box * valid` on the square (see
  `unletterbox_yxyx`)."""
  batched = image.shape.rank == 4
  shape = tf.cast(tf.shape(image)[-3:-1], tf.float32)
  scale = size / tf.reduce_max(shape)
  new = tf.maximum(tf.cast(tf.round(shape * scale), tf.int32), 1)
  resized = tf.image.resize(tf.cast(image, tf.float32), new)
  paddings = [[0, size - new[0]], [0, size - new[1]], [0, 0]]
  padded = tf.pad(resized, ([[0, 0]] if batched else []) + paddings)
  # A reshape, not tf.ensure_shape (no TFLite built-in): static shape for the model.
  # A known batch size stays known (the TFLite files' batch of one).
  batch = ([-1 if image.shape[0] is None else image.shape[0]] if batched else [])
  padded = tf.reshape(padded, batch + [size, size, image.shape[-1]])
  return padded, tf.cast(new, tf.float32) / size


def unletterbox_yxyx(boxes_yxyx: tf.Tensor, valid: tf.Tensor) -> tf.Tensor:
  """Boxes normalized to the letterboxed square -> normalized to the original image,
  clipped to [0, 1]."""
  scale = tf.concat([valid, valid], axis=-1)
  return tf.clip_by_value(boxes_yxyx / scale, 0.0, 1.0)


def postprocess_yxyx(box_deltas: tf.Tensor, class_logits: tf.Tensor, anchors_yxyx, *,
                     max_detections: int, score_threshold: float, iou_threshold: float,
                     pre_nms_top_k: int, class_agnostic_nms: bool = False):
  """One image's raw head outputs -> its final detections, with per-class NMS (or
  class-agnostic NMS).

  Built-in TFLite ops only: the top `pre_nms_top_k` (anchor, class) scores are decoded and
  suppressed with one `NonMaxSuppressionV5` (TFLite `NON_MAX_SUPPRESSION_V5`), each class's
  boxes shifted by a class-sized offset so that boxes of different classes never overlap
  (per-class NMS in one call, as torchvision's `batched_nms`). No Flex ops, no
  `TFLite_Detection_PostProcess` registration.

  Args:
    box_deltas: `[A, 4]` regression outputs.
    class_logits: `[A, C]` class logits.
    class_agnostic_nms: suppress overlapping boxes whatever their classes (for classes
      that exclude each other, as digits: one object, one box).

  Returns:
    `boxes [max_detections, 4]` normalized yxyx clipped to [0, 1], `scores
    [max_detections]`, `classes [max_detections]` float32 (class index), `num` int32;
    rows past `num` are zero.
  """
  num_classes = class_logits.shape[-1]
  scores = tf.reshape(tf.sigmoid(tf.cast(class_logits, tf.float32)), [-1])  # [A * C]
  k = min(pre_nms_top_k, int(np.prod(class_logits.shape)))
  top_scores, top = tf.math.top_k(scores, k=k, sorted=True)
  anchor_index = top // num_classes
  classes = top % num_classes
  boxes = decode_yxyx(tf.gather(box_deltas, anchor_index),
                      tf.gather(tf.convert_to_tensor(anchors_yxyx), anchor_index))
  boxes = tf.clip_by_value(boxes, 0.0, 1.0)
  # Boxes lie in [0, 1]: an offset of 2 per class keeps classes apart. Class-agnostic: no
  # offset, so one object never gets two boxes of two classes (digits: one class each).
  offset = 0.0 if class_agnostic_nms else tf.cast(classes, tf.float32)[:, None] * 2.0
  selected, selected_scores, num = tf.raw_ops.NonMaxSuppressionV5(
      boxes=boxes + offset, scores=top_scores, max_output_size=max_detections,
      iou_threshold=iou_threshold, score_threshold=score_threshold, soft_nms_sigma=0.0,
      pad_to_max_output_size=True)
  valid = tf.range(max_detections) < num
  out_boxes = tf.where(valid[:, None], tf.gather(boxes, selected), 0.0)
  out_scores = tf.where(valid, selected_scores, 0.0)
  out_classes = tf.where(valid, tf.cast(tf.gather(classes, selected), tf.float32), 0.0)
  return out_boxes, out_scores, out_classes, num


def postprocess_batch_yxyx(box_deltas: tf.Tensor, class_logits: tf.Tensor, anchors_yxyx,
                           **options):
  """`postprocess_yxyx` for every image of `box_deltas [B, A, 4]` and `class_logits
  [B, A, C]` (the detector's two heads, kept apart: see `detector.heads_model`); returns
  the TensorFlow Object Detection API's outputs: `detection_boxes [B, K, 4]`,
  `detection_scores [B, K]`, `detection_classes [B, K]` (float32 class index) and
  `num_detections [B]` (float32), K = `max_detections`."""
  k = options["max_detections"]
  box_deltas = tf.cast(box_deltas, tf.float32)
  class_logits = tf.cast(class_logits, tf.float32)
  if box_deltas.shape[0] == 1:
    # One image (the TFLite files): no loop, so the converted graph has no WHILE subgraph
    # and the int8 converter can keep every post-processing op in float.
    boxes, scores, classes, num = (t[None] for t in postprocess_yxyx(
        box_deltas[0], class_logits[0], anchors_yxyx, **options))
  else:
    boxes, scores, classes, num = tf.map_fn(
        lambda both: postprocess_yxyx(both[0], both[1], anchors_yxyx, **options),
        (box_deltas, class_logits),
        fn_output_signature=(tf.TensorSpec([k, 4], tf.float32),
                             tf.TensorSpec([k], tf.float32), tf.TensorSpec([k], tf.float32),
                             tf.TensorSpec([], tf.int32)))
  return {"detection_boxes": boxes, "detection_scores": scores,
          "detection_classes": classes, "num_detections": tf.cast(num, tf.float32)}
