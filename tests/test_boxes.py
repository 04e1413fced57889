"""zoo.boxes: anchors, the box coder, matching, letterboxing, conversions and NMS."""

import numpy as np
import pytest
import tensorflow as tf

from zoo import boxes as zb

ANCHORS = dict(min_level=3, max_level=4, size_in_strides=2.0,
               scales=(1.0, 2 ** (1 / 3), 2 ** (2 / 3)), aspect_ratios=(1.0, 2.0, 3.0))


def test_anchor_counts_and_geometry():
  anchors = zb.anchors_yxyx(128, **ANCHORS)
  # Level 3: 16x16 cells, level 4: 8x8 cells; 3 scales x 3 ratios each.
  assert anchors.shape == ((16 * 16 + 8 * 8) * 9, 4)
  assert zb.anchors_per_location(ANCHORS["scales"], ANCHORS["aspect_ratios"]) == 9
  first = anchors[0] * 128  # Level 3, cell (0, 0), scale 1, ratio 1: 16x16 px centred at 4, 4.
  np.testing.assert_allclose(first, [-4, -4, 12, 12], atol=1e-4)
  tall = anchors[1] * 128  # Ratio 2: height / width = 2, same area.
  h, w = tall[2] - tall[0], tall[3] - tall[1]
  np.testing.assert_allclose([h / w, h * w], [2.0, 256.0], rtol=1e-5)
  level4 = anchors[16 * 16 * 9] * 128  # First anchor of level 4: 32x32 px centred at 8, 8.
  np.testing.assert_allclose(level4, [-8, -8, 24, 24], atol=1e-4)
  with pytest.raises(ValueError, match="multiple of 2\\*\\*max_level = 16"):
    zb.anchors_yxyx(100, **ANCHORS)


def test_encode_decode_round_trip():
  rng = np.random.default_rng(0)
  anchors = zb.anchors_yxyx(64, **ANCHORS)
  centre = rng.uniform(0.2, 0.8, (len(anchors), 2))
  size = rng.uniform(0.05, 0.4, (len(anchors), 2))
  boxes = np.concatenate([centre - size / 2, centre + size / 2], -1).astype(np.float32)
  deltas = zb.encode_yxyx(boxes, anchors)
  np.testing.assert_allclose(zb.decode_yxyx(deltas, anchors).numpy(), boxes, atol=1e-5)
  # A box equal to its anchor encodes to zeros.
  np.testing.assert_allclose(zb.encode_yxyx(anchors, anchors).numpy(), 0, atol=1e-5)


def test_iou_hand_computed():
  a = np.array([[0, 0, 0.5, 0.5]], np.float32)
  b = np.array([[0.25, 0.25, 0.75, 0.75], [0.5, 0.5, 1, 1], [0, 0, 0.5, 0.5]], np.float32)
  # Overlap 0.25^2 = 1/16; union 2/4 - 1/16 = 7/16 -> 1/7. Touching corners: 0. Same: 1.
  np.testing.assert_allclose(zb.iou_yxyx(a, b).numpy(), [[1 / 7, 0.0, 1.0]], atol=1e-6)


def test_matching_positives_ignores_and_forced_thin_objects():
  anchors = zb.anchors_yxyx(128, **ANCHORS)
  wide = [0.30, 0.30, 0.45, 0.45]           # ~19 px square: has anchors of IoU >= 0.5.
  thin = [0.60, 0.60, 0.75, 0.62]           # A "1": 19 x 3 px, no anchor reaches 0.5.
  boxes = np.array([wide, thin], np.float32)
  targets, classes = zb.match_anchors_yxyx(boxes, [3, 1], anchors)
  classes = classes.numpy()
  iou = zb.iou_yxyx(anchors, boxes).numpy()
  assert iou[:, 1].max() < 0.5
  assert np.all(classes[iou[:, 0] >= 0.5] == 3)
  assert classes[np.argmax(iou[:, 1])] == 1  # Forced: the thin digit's best anchor.
  assert set(np.unique(classes)) <= {zb.BACKGROUND, zb.IGNORE, 1, 3}
  assert zb.IGNORE in classes
  # Positive anchors' targets decode back to their object.
  positive = classes >= 0
  decoded = zb.decode_yxyx(targets.numpy()[positive], anchors[positive]).numpy()
  expected = boxes[np.where(classes[positive] == 3, 0, 1)]
  np.testing.assert_allclose(decoded, expected, atol=1e-5)
  np.testing.assert_array_equal(targets.numpy()[~positive], 0)


def test_matching_without_objects_and_with_a_shared_best_anchor():
  anchors = zb.anchors_yxyx(64, **ANCHORS)
  targets, classes = zb.match_anchors_yxyx(np.zeros((0, 4), np.float32), [], anchors)
  assert np.all(classes.numpy() == zb.BACKGROUND) and not np.any(targets.numpy())
  # Two identical tiny objects share their best anchor: one of them claims it, no crash.
  tiny = [[0.5, 0.5, 0.52, 0.52]] * 2
  _, classes = zb.match_anchors_yxyx(np.array(tiny, np.float32), [4, 7], anchors)
  assert set(classes.numpy()[classes.numpy() >= 0]) <= {4, 7}
  assert np.sum(classes.numpy() >= 0) >= 1


def test_coco_conversions_round_trip():
  xywh = np.array([[10, 20, 30, 40], [0, 0, 100, 50]], np.float64)
  yxyx = zb.coco_xywh_to_yxyx(xywh, height=50, width=100)
  np.testing.assert_allclose(yxyx[0], [0.4, 0.1, 1.2, 0.4], rtol=1e-6)
  np.testing.assert_allclose(zb.yxyx_to_coco_xywh(yxyx, 50, 100), xywh, atol=1e-4)


def test_letterbox_and_back():
  image = tf.ones([50, 100, 3], tf.uint8) * 255
  square, valid = zb.letterbox(image, 64)
  assert square.shape == (64, 64, 3)
  np.testing.assert_allclose(valid.numpy(), [0.5, 1.0])
  assert float(tf.reduce_max(square[32:])) == 0.0 and float(tf.reduce_min(square[:32])) > 250
  box = tf.constant([[0.2, 0.1, 0.6, 0.9]])  # Normalized to the 100x50 image.
  on_square = box * tf.concat([valid, valid], 0)
  np.testing.assert_allclose(zb.unletterbox_yxyx(on_square, valid).numpy(), box.numpy(),
                             atol=1e-6)
  batch, valid_b = zb.letterbox(tf.zeros([2, 50, 100, 1], tf.uint8), 64)
  assert batch.shape == (2, 64, 64, 1) and np.allclose(valid_b.numpy(), [0.5, 1.0])


def _logits(scores):
  p = np.clip(np.asarray(scores, np.float32), 1e-6, 1 - 1e-6)
  return np.log(p / (1 - p))


def test_postprocess_nms_is_per_class_and_padded():
  anchors = np.array([[0.1, 0.1, 0.5, 0.5], [0.12, 0.1, 0.52, 0.5], [0.6, 0.6, 0.9, 0.9]],
                     np.float32)
  deltas = np.zeros((3, 4), np.float32)  # Boxes = anchors.
  # Anchors 0 and 1 overlap (IoU ~0.9): class 2 on both -> one kept; anchor 1 also says
  # class 5 (another class, kept); anchor 2: class 0 below the score threshold.
  scores = np.full((3, 6), 1e-4, np.float32)
  scores[0, 2], scores[1, 2], scores[1, 5], scores[2, 0] = 0.9, 0.8, 0.7, 0.01
  boxes, s, classes, num = zb.postprocess_yxyx(
      deltas, _logits(scores), anchors, max_detections=5, score_threshold=0.05,
      iou_threshold=0.5, pre_nms_top_k=10)
  assert int(num) == 2
  np.testing.assert_allclose(s.numpy()[:2], [0.9, 0.7], rtol=1e-4)
  np.testing.assert_array_equal(classes.numpy(), [2, 5, 0, 0, 0])
  np.testing.assert_allclose(boxes.numpy()[:2], anchors[[0, 1]], atol=1e-6)
  assert not np.any(boxes.numpy()[2:]) and not np.any(s.numpy()[2:])
  for n in (2, 1):  # A batch (map_fn) and one image (no loop) give the same answers.
    batch = zb.postprocess_batch_yxyx(
        deltas[None].repeat(n, 0), _logits(scores)[None].repeat(n, 0), anchors,
        max_detections=5, score_threshold=0.05, iou_threshold=0.5, pre_nms_top_k=10)
    assert batch["detection_boxes"].shape == (n, 5, 4)
    np.testing.assert_array_equal(batch["num_detections"].numpy(), [2.0] * n)
    np.testing.assert_allclose(batch["detection_boxes"][0].numpy(), boxes.numpy(), atol=1e-6)


def test_class_agnostic_nms_keeps_one_box_per_object():
  """Two overlapping anchors, each read as another class: per-class NMS keeps both (a digit
  read twice), class-agnostic NMS the better one."""
  anchors = np.array([[0.1, 0.1, 0.5, 0.5], [0.12, 0.1, 0.52, 0.5]], np.float32)
  deltas = np.zeros((2, 4), np.float32)
  scores = np.full((2, 10), 1e-4, np.float32)
  scores[0, 6], scores[1, 0] = 0.75, 0.71  # "6 0.75" and "0 0.71" on one "0".
  options = dict(max_detections=5, score_threshold=0.05, iou_threshold=0.5, pre_nms_top_k=10)
  _, _, classes, num = zb.postprocess_yxyx(deltas, _logits(scores), anchors, **options)
  assert int(num) == 2 and sorted(classes.numpy()[:2]) == [0, 6]
  _, s, classes, num = zb.postprocess_yxyx(deltas, _logits(scores), anchors,
                                           class_agnostic_nms=True, **options)
  assert int(num) == 1 and classes.numpy()[0] == 6
  np.testing.assert_allclose(s.numpy()[0], 0.75, rtol=1e-4)
