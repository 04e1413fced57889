"""COCO detection metrics with pycocotools (the reference implementation, not a rewrite).

`coco_metrics(ground_truth, detections, class_names)` builds the two COCO JSON documents in
memory (pixel `[x, y, width, height]` boxes, converted from the zoo's normalized `yxyx` at
this edge), runs `pycocotools.cocoeval.COCOeval` for bounding boxes with its defaults (IoU
.50:.05:.95, up to 100 detections per image, all areas), and returns mAP@[.5:.95],
mAP@.5, mAP@.75 and the AP@[.5:.95] of every class.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np

from zoo import boxes as zboxes
from zoo import errors


def coco_metrics(ground_truth: list[dict], detections: list[dict],
                 class_names) -> dict:
  """COCO box metrics of one set of detections.

  Args:
    ground_truth: one dict per image (see `zoo.data.detection_input.ground_truth`):
      `height`, `width` (pixels), `boxes_yxyx` (normalized to the image), `labels`.
    detections: one dict per image, same order: `boxes_yxyx` `[K, 4]` normalized to the
      image, `scores` `[K]`, `classes` `[K]` (padding rows may be included: only the first
      `num` are read when `num` is given).
    class_names: the class names, index = class id.

  Returns:
    `{"map", "map_50", "map_75", "per_class_ap": {name: AP or None (no objects)},
    "num_images", "num_objects", "num_detections"}`.
  """
  from pycocotools.coco import COCO
  from pycocotools.cocoeval import COCOeval
  if len(ground_truth) != len(detections):
    raise errors.InvalidValueError(f"Invalid value for `detections`: expected one entry per image "
                                   f"({len(ground_truth)}). Received: {len(detections)}")
  images, annotations, results = [], [], []
  for image_id, (gt, det) in enumerate(zip(ground_truth, detections), start=1):
    h, w = int(gt["height"]), int(gt["width"])
    images.append({"id": image_id, "height": h, "width": w})
    for box, label in zip(zboxes.yxyx_to_coco_xywh(gt["boxes_yxyx"], h, w), gt["labels"]):
      annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                          "category_id": int(label) + 1, "bbox": [float(v) for v in box],
                          "area": float(box[2] * box[3]), "iscrowd": 0})
    n = int(det.get("num", len(det["scores"])))
    for box, score, cls in zip(zboxes.yxyx_to_coco_xywh(det["boxes_yxyx"][:n], h, w),
                               det["scores"][:n], det["classes"][:n]):
      results.append({"image_id": image_id, "category_id": int(cls) + 1,
                      "bbox": [float(v) for v in box], "score": float(score)})
  # COCO category ids are 1-based; the zoo's class ids are 0-based indices into class_names.
  categories = [{"id": i + 1, "name": str(name)} for i, name in enumerate(class_names)]
  metrics = {"num_images": len(images), "num_objects": len(annotations),
             "num_detections": len(results)}
  if not annotations:
    raise errors.InvalidValueError("Invalid value for `ground_truth`: no objects to score against.")
  with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its tables.
    gt_coco = COCO()
    gt_coco.dataset = {"images": images, "annotations": annotations,
                       "categories": categories}
    gt_coco.createIndex()
    if not results:
      return {"map": 0.0, "map_50": 0.0, "map_75": 0.0,
              "per_class_ap": {str(n): 0.0 for n in class_names}, **metrics}
    dt_coco = gt_coco.loadRes(results)
    evaluator = COCOeval(gt_coco, dt_coco, iouType="bbox")
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
  # precision: [IoU thresholds, recall levels, classes, area ranges, max dets]; -1 = no data.
  precision = evaluator.eval["precision"][:, :, :, 0, -1]
  per_class = {}
  for k, name in enumerate(class_names):
    p = precision[:, :, k]
    per_class[str(name)] = float(np.mean(p[p > -1])) if np.any(p > -1) else None
  return {"map": float(evaluator.stats[0]), "map_50": float(evaluator.stats[1]),
          "map_75": float(evaluator.stats[2]), "per_class_ap": per_class, **metrics}
