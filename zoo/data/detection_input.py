"""Object-detection input pipelines over tensorflow-datasets (TFDS) detection datasets.

Any builder with TFDS's detection layout works (`mnist_detection`, `voc`, `coco`, a
user's COCO-format folder from `zoo.data.coco_folder`): `image` (any size, gray or RGB)
and `objects` with `bbox` (normalized `[ymin, xmin, ymax, xmax]`, the zoo's one box format,
see `zoo.boxes`) and `label`.

Stage order, fixed:

  read (TFDS, decoded) -> shard -> shuffle -> map(sanitize boxes, letterbox, flip,
  encode targets; parallel) -> batch (per replica) -> prefetch

No cache: photos of any size may not fit in memory, and reading and decoding a
128x128 canvas costs ~1 ms against ~5 ms of training per image on a 2-core CPU.

`sanitize_objects` drops what cannot be a box (TFDS's mock data has ymin > ymax, box and
label lists of different lengths): real datasets pass through it unchanged.
"""

from __future__ import annotations

import io
from typing import Optional, Sequence

import numpy as np
from PIL import Image
import tensorflow as tf
import tensorflow_datasets as tfds

from zoo import boxes as zboxes
from zoo import errors
from zoo.data import tfds_input
from zoo.data.tfds_input import normalize_images


def sanitize_objects(bbox: tf.Tensor, label: tf.Tensor):
  """Keeps the objects that are boxes: as many as both lists have, with ymin < ymax and
  xmin < xmax after clipping to [0, 1]. Returns `(boxes [N, 4] float32, labels [N] int32)`."""
  n = tf.minimum(tf.shape(bbox)[0], tf.shape(label)[0])
  bbox = tf.clip_by_value(tf.cast(bbox[:n], tf.float32), 0.0, 1.0)
  label = tf.cast(label[:n], tf.int32)
  keep = tf.logical_and(bbox[:, 2] > bbox[:, 0], bbox[:, 3] > bbox[:, 1])
  return tf.boolean_mask(bbox, keep), tf.boolean_mask(label, keep)


def decode_example(example, image_size: int):
  """One TFDS example -> `(image float32 [S, S, C] in [0, 1], valid [2], boxes_yxyx [N, 4]
  on the letterboxed square, labels [N] int32)`."""
  image, valid = zboxes.letterbox(example["image"], image_size)
  boxes, labels = sanitize_objects(example["objects"]["bbox"], example["objects"]["label"])
  boxes = boxes * tf.concat([valid, valid], axis=0)
  return normalize_images(image), valid, boxes, labels


def flip_left_right_yxyx(image: tf.Tensor, boxes_yxyx: tf.Tensor):
  """Mirrors one HWC image and its normalized boxes."""
  flipped = tf.stack([boxes_yxyx[:, 0], 1.0 - boxes_yxyx[:, 3], boxes_yxyx[:, 2],
                      1.0 - boxes_yxyx[:, 1]], axis=-1)
  return tf.image.flip_left_right(image), flipped


def read_examples(builder: tfds.core.DatasetBuilder, split: str) -> tf.data.Dataset:
  """The split's examples in stored order, images decoded (uint8 [H, W, C])."""
  return builder.as_dataset(split=split, shuffle_files=False)


def make_detection_dataset(
    builder: tfds.core.DatasetBuilder,
    split: str,
    *,
    image_size: int,
    anchors_yxyx: np.ndarray,
    batch_size: int,
    training: bool,
    seed: int = 0,
    flip: bool = False,
    shuffle_buffer_examples: int = 20_000,
    epochs: Sequence[int] = (0,),
    input_context: Optional[tf.distribute.InputContext] = None,
) -> tf.data.Dataset:
  """Builds `(images, targets)` batches for a detector's `fit()`.

  Args:
    builder: a prepared TFDS builder with the detection layout (module docstring).
    split: TFDS split, slicing allowed.
    image_size: side of the model's square input, in pixels: every image is resized to fit
      and padded at the bottom and right (`zoo.boxes.letterbox`), its boxes likewise.
    anchors_yxyx: the model's anchors (`zoo.models.detector.anchors_yxyx`).
    batch_size: global batch size in images (per replica with `input_context`).
    training: shuffle, optionally flip, and drop the last partial batch.
    seed: seed of the shuffle order and the flips.
    flip: random horizontal flips (training only). Off for digits (a mirrored 2 is no 2).
    shuffle_buffer_examples: shuffle buffer, in images.
    epochs: training: the epochs to produce, one after another, each shuffled and flipped
      from `zoo.data.tfds_input.epoch_seed(seed, epoch)` alone (see
      `make_classification_dataset`: a resumed run sees the batches an uninterrupted one does).
    input_context: shard for one of several input pipelines (multi-worker).

  Returns:
    `(images float32 [B, S, S, C] in [0, 1], targets float32 [B, A, 5])`: per anchor the
    encoded box (4, `zoo.boxes.encode_yxyx`) and the class target (`zoo.boxes.BACKGROUND`,
    `zoo.boxes.IGNORE` or the class id), as `zoo.models.detector.DetectionLoss` reads them.
  """
  if batch_size <= 0:
    raise errors.InvalidValueError("Invalid value for `batch_size`: expected a positive integer. "
                                   f"Received: batch_size={batch_size!r}")
  ds = read_examples(builder, split)
  if input_context is not None:
    batch_size = input_context.get_per_replica_batch_size(batch_size)
    if input_context.num_input_pipelines > 1:
      ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
  anchors = tf.constant(anchors_yxyx)

  def to_targets(example, pair=None):
    image, _, boxes, labels = decode_example(example, image_size)
    if pair is not None:
      flipped = tf.random.stateless_uniform([], seed=pair) < 0.5
      image, boxes = tf.cond(flipped, lambda: flip_left_right_yxyx(image, boxes),
                             lambda: (image, boxes))
    box_targets, class_targets = zboxes.match_anchors_yxyx(boxes, labels, anchors)
    targets = tf.concat([box_targets, tf.cast(class_targets, tf.float32)[:, None]], axis=-1)
    return image, targets

  if not training:
    ds = ds.map(to_targets, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

  def one_epoch(epoch):
    this_seed = tfds_input.epoch_seed(seed, epoch)
    shuffled = ds.shuffle(shuffle_buffer_examples, seed=this_seed,
                          reshuffle_each_iteration=False)
    if flip:
      pairs = tf.data.Dataset.random(seed=this_seed).batch(2)
      shuffled = tf.data.Dataset.zip((shuffled, pairs))
    shuffled = shuffled.map(to_targets, num_parallel_calls=tf.data.AUTOTUNE)
    return shuffled.batch(batch_size, drop_remainder=True, num_parallel_calls=tf.data.AUTOTUNE)

  return tfds_input.concatenate_epochs(one_epoch, epochs).prefetch(tf.data.AUTOTUNE)


def make_eval_images(builder, split: str, *, image_size: int, batch_size: int,
                     limit: Optional[int] = None) -> tf.data.Dataset:
  """Batches of `(images float32 [B, S, S, C] in [0, 1], valid [B, 2])` of `split` in
  stored order, letterboxed (`valid`: see `zoo.boxes.letterbox`), for predictions scored
  against `ground_truth`."""
  ds = read_examples(builder, split)
  if limit is not None:
    ds = ds.take(limit)
  ds = ds.map(lambda ex: decode_example(ex, image_size)[:2],
              num_parallel_calls=tf.data.AUTOTUNE)
  return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def ground_truth(builder, split: str, limit: Optional[int] = None) -> list[dict]:
  """The split's objects in stored order, one dict per image: `height`, `width` (pixels of
  the original image), `boxes_yxyx` (normalized to the original image), `labels`, and the
  `image` itself (uint8 [H, W, C]: for drawing and for exported models)."""
  ds = read_examples(builder, split)
  if limit is not None:
    ds = ds.take(limit)

  def summarize(ex):
    shape = tf.shape(ex["image"])
    boxes, labels = sanitize_objects(ex["objects"]["bbox"], ex["objects"]["label"])
    return {"height": shape[0], "width": shape[1], "boxes_yxyx": boxes, "labels": labels,
            "image": ex["image"]}

  return list(tfds.as_numpy(ds.map(summarize, num_parallel_calls=tf.data.AUTOTUNE)))


def box_statistics(builder: tfds.core.DatasetBuilder, split: str, *,
                   max_images: int = 2000) -> dict:
  """How large the objects of `split` are, for choosing a detector's input size: the
  median box side (the square root of width x height) as a fraction of its photo's longer
  side, and the median longer side in pixels, over its first `max_images` images. Images
  are not decoded (their headers give their sizes).

  Raises:
    zoo.errors.InvalidValueError: the split has no box.
  """
  ds = builder.as_dataset(split=split, decoders={"image": tfds.decode.SkipDecoding()})
  fractions, sides = [], []
  for example in ds.take(max_images).as_numpy_iterator():
    with Image.open(io.BytesIO(example["image"])) as image:
      width, height = image.size
    side = max(width, height)
    sides.append(side)
    b = np.asarray(example["objects"]["bbox"], np.float64).reshape(-1, 4)
    areas = np.clip(b[:, 2] - b[:, 0], 0, 1) * height * np.clip(b[:, 3] - b[:, 1], 0, 1) * width
    fractions.extend(np.sqrt(areas[areas > 0]) / side)
  if not fractions:
    raise errors.InvalidValueError(
        f"Invalid value for `model_kwargs.image_size`: 'auto' sizes the input from the "
        f"boxes of split {split!r}, which has none; set a size, e.g. "
        "--set=model_kwargs.image_size=320.")
  return {"box_side_fraction": float(np.median(fractions)),
          "photo_side": int(np.median(sides)), "images": len(sides), "boxes": len(fractions)}
