"""Image-classification input pipelines over tensorflow-datasets (TFDS).

Stage order, fixed for every recipe:

  read (TFDS) -> shard (per input pipeline) -> cache -> shuffle -> repeat
  -> map(normalize, augment; parallel) -> batch (per replica) -> prefetch

Offline first: these machines have no internet. `prepare_builder` never lets TFDS try
to download (it retries for minutes, or hangs) unless `allow_download=True`; it prepares
from a folder of the dataset's original files (`manual_dir`) or fails at once with a
message naming the dataset, the files expected and the flags to pass.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from zoo import errors
from zoo.data import coco_folder, image_folder, mnist_detection
from zoo.data.quiet import quiet_tfds, shown_path

# The original files each dataset is prepared from, as TFDS names them inside
# `manual_dir` (the basenames of its download URLs).
_IDX_FILES = tuple(f for pair in mnist_detection.MNIST_FILES.values() for f in pair)
EXPECTED_FILES = {"mnist": _IDX_FILES, "fashion_mnist": _IDX_FILES,
                  "mnist_detection": _IDX_FILES}

log = logging.getLogger("zoo")


class DatasetNotAvailableError(errors.ZooError, RuntimeError):
  """The dataset is neither prepared nor provided, and downloading is not allowed."""


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """What a recipe needs to know about a dataset before building a model."""
  name: str
  image_shape: tuple[int, int, int]
  num_classes: int
  class_names: tuple[str, ...]
  num_examples: dict[str, int]


def prepare_builder(name: str, *, data_dir: Optional[str] = None,
                    manual_dir: Optional[str] = None,
                    allow_download: bool = False,
                    folder_image_shape: Sequence[int] = (28, 28, 1),
                    folder_resize: str = "pad",
                    folder_validation_fraction: float = 0.2) -> tfds.core.DatasetBuilder:
  """Returns a TFDS builder for `name` whose data is ready to read.

  Args:
    name: TFDS dataset name, e.g. `mnist` or `fashion_mnist`; `coco:DIR` for a folder
      of COCO-format detection data (see `zoo.data.coco_folder`); `folder:DIR` for a
      folder of labelled images (see `zoo.data.image_folder`).
    data_dir: TFDS data directory (default: TFDS's, `~/tensorflow_datasets`).
    manual_dir: folder holding the dataset's original files; the dataset is prepared
      from them into `data_dir` when it is not prepared yet (about 25 s for MNIST).
    allow_download: let TFDS download the files when neither prepared nor provided.
    folder_image_shape: (height, width, channels) a `folder:DIR`'s images are fitted to
      (`zoo.data.image_folder.prepare`); other datasets ignore it.
    folder_resize: how they are fitted: `pad`, `crop`, `stretch` or `mnist_digit`.
    folder_validation_fraction: share of each class held out as `valid` when the
      folder has no validation split.

  Raises:
    DatasetNotAvailableError: not prepared, no usable `manual_dir`, no download allowed.
    ValueError: unknown dataset name.
  """
  if coco_folder.is_coco_folder(name):  # A user's own folder, `coco:DIR`.
    return coco_folder.prepare(name[len(coco_folder.PREFIX):], data_dir=data_dir)
  if image_folder.is_image_folder(name):  # A user's own folder, `folder:DIR`.
    return image_folder.prepare(name[len(image_folder.PREFIX):],
                                image_shape=folder_image_shape, resize=folder_resize,
                                validation_fraction=folder_validation_fraction,
                                data_dir=data_dir)
  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except (tfds.core.registered.DatasetNotFoundError, ValueError):
    # ValueError: TFDS could not parse the name; its message is its 20-line grammar.
    raise errors.InvalidValueError(
        f"Invalid value for `dataset`: {name!r} is not a tensorflow-datasets name (e.g. "
        f"'mnist', 'fashion_mnist'), a folder of labelled images "
        f"('{image_folder.PREFIX}DIR') or a folder of COCO-format data "
        f"('{coco_folder.PREFIX}DIR').{errors.did_you_mean(name, tfds.list_builders())}"
    ) from None
  if builder.is_prepared():
    return builder
  expected = EXPECTED_FILES.get(name)
  where = data_dir or "the default TFDS data_dir (~/tensorflow_datasets)"
  if manual_dir:
    if not os.path.isdir(manual_dir):
      raise DatasetNotAvailableError(
          f"Invalid value for `manual_dir`: {manual_dir!r} is not a directory. Expected a "
          f"folder holding the original files of {name!r}: {list(expected or ['...'])}.")
    missing = [f for f in (expected or ()) if not os.path.exists(os.path.join(manual_dir, f))]
    if missing:
      raise DatasetNotAvailableError(
          f"Dataset {name!r}: `manual_dir` {manual_dir!r} lacks {missing}. "
          f"Expected all of {list(expected)}.")
    log.info("Preparing %r from the original files in %s into %s (once) ...", name,
             manual_dir, shown_path(builder.data_dir_root))
    start = time.perf_counter()
    with quiet_tfds():
      builder.download_and_prepare(
          download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
    log.info("Prepared %r in %.0f s.", name, time.perf_counter() - start)
    return builder
  if allow_download:
    builder.download_and_prepare()
    return builder
  files = f" ({', '.join(expected)})" if expected else ""
  raise DatasetNotAvailableError(
      f"Dataset {name!r} is not prepared in {where}, and downloading is off (this zoo "
      f"never downloads unless told to). Pass --manual_dir=DIR, a folder holding the "
      f"dataset's original files{files}, e.g. --manual_dir=../shared/data/mnist; or "
      f"--data_dir=DIR where it is already prepared; or --download to let "
      f"tensorflow-datasets fetch it (needs internet).")


def builder_for(config, *, data_dir: Optional[str] = None, manual_dir: Optional[str] = None,
                allow_download: bool = False,
                prepared_dir: Optional[str] = None) -> tfds.core.DatasetBuilder:
  """`prepare_builder` of a recipe's dataset, a folder prepared as the recipe says
  (`folder_image_shape`, `folder_resize`, `folder_validation_fraction` of a
  `zoo.configs.TrainConfig`).

  Args:
    prepared_dir: where a run's dataset was prepared (its run card's `dataset_dir`): a
      `folder:DIR` that no longer exists is read from there, so that a run whose folder was
      moved or deleted still exports and evaluates.
  """
  if (image_folder.is_image_folder(config.dataset)
      and not os.path.isdir(config.dataset[len(image_folder.PREFIX):])
      and prepared_dir and os.path.isfile(os.path.join(prepared_dir, "dataset_info.json"))):
    log.info("%s is gone; reading the copy prepared for this run in %s.", config.dataset,
             prepared_dir)
    return tfds.builder_from_directory(prepared_dir)
  return prepare_builder(config.dataset, data_dir=data_dir, manual_dir=manual_dir,
                         allow_download=allow_download,
                         folder_image_shape=config.folder_image_shape,
                         folder_resize=config.folder_resize,
                         folder_validation_fraction=config.folder_validation_fraction)


def dataset_info(builder: tfds.core.DatasetBuilder) -> DatasetInfo:
  """Summarizes an image builder: image shape (`None` for sizes that vary), classes (of
  `label`, or of `objects/label` for detection datasets), split sizes."""
  features = builder.info.features
  image_shape = tuple(features["image"].shape)
  label = features["label"] if "label" in features else features["objects"]["label"]
  return DatasetInfo(
      name=builder.name,
      image_shape=image_shape,
      num_classes=label.num_classes,
      class_names=tuple(label.names),
      num_examples={k: v.num_examples for k, v in builder.info.splits.items()},
  )


def num_examples(builder: tfds.core.DatasetBuilder, split: str) -> int:
  """Number of examples in `split` (slicing allowed), from the metadata or, where the
  metadata lacks it (mocked datasets), by counting."""
  try:
    return int(builder.info.splits[split].num_examples)
  except KeyError:
    ds = builder.as_dataset(split=split)
    n = int(ds.cardinality())
    return n if n >= 0 else sum(1 for _ in ds)


def normalize_images(images: tf.Tensor) -> tf.Tensor:
  """uint8 pixels in [0, 255] -> float32 in [0, 1]. The one place this is defined:
  training pipelines and exported serving signatures both call it."""
  return tf.cast(images, tf.float32) / 255.0


def random_translate(images: tf.Tensor, max_shift: int, seed: tf.Tensor) -> tf.Tensor:
  """Shifts each image of a batch [B, H, W, C] by its own random offset of up to
  `max_shift` pixels along each axis (uniform, independent), zero-filled.

  Stateless: the same `seed` (shape [2], int) gives the same shifts. One vectorized op
  per batch (two gathers), not one per image: on a 2-core CPU the per-image version cost
  the MNIST pipeline a third of its speed.
  """
  if max_shift == 0:
    return images
  height = images.shape[1] if images.shape[1] is not None else tf.shape(images)[1]
  width = images.shape[2] if images.shape[2] is not None else tf.shape(images)[2]
  padded = tf.pad(images, [[0, 0], [max_shift, max_shift], [max_shift, max_shift], [0, 0]])
  offsets = tf.random.stateless_uniform([tf.shape(images)[0], 2], seed=seed, minval=0,
                                        maxval=2 * max_shift + 1, dtype=tf.int32)
  rows = offsets[:, :1] + tf.range(height)[None]  # [B, H]: the rows each image keeps
  cols = offsets[:, 1:] + tf.range(width)[None]  # [B, W]
  shifted = tf.gather(tf.gather(padded, rows, axis=1, batch_dims=1), cols, axis=2, batch_dims=1)
  return tf.ensure_shape(shifted, images.shape)


def random_resized_crop(images: tf.Tensor, seed: tf.Tensor, *, min_scale: float) -> tf.Tensor:
  """Inception-style crops of a batch [B, H, W, C] of float32 images, each image on its
  own: a box of `min_scale` to all of the image's area (uniform) and aspect ratio 3/4 to 4/3
  (log-uniform; sides clipped to the image), at a uniform position, resized back to H x W
  (bilinear). What ImageNet training and Keras' `RandomResizedCrop`-style fine-tuning do:
  the class stays, its scale and framing vary. Stateless: the same `seed` (shape [2], int)
  gives the same batch. `min_scale` 1: the images unchanged."""
  if min_scale >= 1.0:
    return images
  n = tf.shape(images)[0]
  draws = tf.random.stateless_uniform([n, 4], seed=seed)
  area = min_scale + (1.0 - min_scale) * draws[:, 0]
  ratio = tf.exp(math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * draws[:, 1])
  height = tf.minimum(tf.sqrt(area / ratio), 1.0)
  width = tf.minimum(tf.sqrt(area * ratio), 1.0)
  top = (1.0 - height) * draws[:, 2]
  left = (1.0 - width) * draws[:, 3]
  boxes = tf.stack([top, left, top + height, left + width], axis=1)
  size = tf.shape(images)[1:3]
  cropped = tf.image.crop_and_resize(images, boxes, tf.range(n), size)
  return tf.ensure_shape(cropped, images.shape)


def random_flip_and_color(images: tf.Tensor, seed: tf.Tensor, *, flip: bool = False,
                          color_jitter: float = 0.0) -> tf.Tensor:
  """Photo augmentation of a batch [B, H, W, C] of float32 images in [0, 1], each image
  on its own: a left-right mirror with probability 1/2 (`flip`), and brightness shifted by
  up to +-`color_jitter` and contrast scaled by 1 +- `color_jitter` (uniform), clipped to
  [0, 1]. Stateless: the same `seed` (shape [2], int) gives the same batch. Vectorized over
  the batch, as `random_translate` is.
  """
  if not flip and not color_jitter:
    return images
  draws = tf.random.stateless_uniform([tf.shape(images)[0], 3], seed=seed)
  per_image = lambda column: tf.reshape(draws[:, column], [-1, 1, 1, 1])  # noqa: E731
  if flip:
    images = tf.where(per_image(0) < 0.5, tf.reverse(images, axis=[2]), images)
  if color_jitter:
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    contrast = 1.0 + (2.0 * per_image(1) - 1.0) * color_jitter
    brightness = (2.0 * per_image(2) - 1.0) * color_jitter
    images = tf.clip_by_value((images - mean) * contrast + mean + brightness, 0.0, 1.0)
  return images


def epoch_seed(seed: int, epoch: int) -> int:
  """The seed of training epoch `epoch` (0-based) of a run seeded `seed`: its shuffle order,
  its augmentation and the model's random layers (`zoo.callbacks.EpochSeeds`) are drawn from
  it, so that every epoch is a function of `(seed, epoch)` alone, not of how many epochs this
  process has run (numpy's `SeedSequence` mixes the two into one 31-bit seed)."""
  return int(np.random.SeedSequence([int(seed), int(epoch)]).generate_state(1)[0] >> 1)


class EpochRange(Sequence[int]):
  """The training epochs a run still has to train, `range(first, stop)`, and `current`: a
  variable naming the epoch in progress, which `zoo.callbacks.CurrentEpoch` sets at each
  epoch's start.

  Given an `EpochRange`, `concatenate_epochs` returns one epoch at a time: each new
  iterator yields the batches of the `current` epoch and then ends. `fit()` makes a new
  iterator every epoch (`steps_per_epoch=None`), so an epoch ends where its data ends and
  Keras can run several steps per call (`steps_per_execution`) without reading into the
  next epoch, as it does when one iterator holds every epoch.
  """

  def __init__(self, first: int, stop: int):
    self.range = range(first, stop)
    if not self.range:
      raise errors.InvalidValueError(
          f"Invalid value for `epochs`: expected at least one epoch. Received: {self.range}")
    with tf.init_scope():  # A plain host variable, outside any strategy or function.
      self.current = tf.Variable(first, dtype=tf.int64, trainable=False, name="epoch")

  def __getitem__(self, i):
    return self.range[i]

  def __len__(self) -> int:
    return len(self.range)

  def __repr__(self) -> str:
    return f"EpochRange({self.range.start}, {self.range.stop})"


def concatenate_epochs(one_epoch, epochs: Sequence[int]) -> tf.data.Dataset:
  """`one_epoch(e)` for each `e` of `epochs` (at least one), one after another: the
  training data of `fit(..., steps_per_epoch=...)` from its first epoch to its last.

  If `epochs` is an `EpochRange`, one epoch per iterator instead: the epoch its `current`
  variable names when the iterator first reads (the cardinality is one epoch's)."""
  current = getattr(epochs, "current", None)
  epochs = list(epochs)
  if not epochs:
    raise errors.InvalidValueError("Invalid value for `epochs`: expected at least one epoch.")
  datasets = [one_epoch(epoch) for epoch in epochs]
  if current is None:
    ds = datasets[0]
    for other in datasets[1:]:
      ds = ds.concatenate(other)
    return ds
  first, branches = epochs[0], [lambda ds=ds: ds for ds in datasets]

  def the_current_epoch(_):
    index = current - first
    check = tf.debugging.assert_less(
        tf.cast(index, tf.uint64), tf.constant(len(epochs), tf.uint64),
        message=f"the current epoch is not one of the epochs {epochs[0]}-{epochs[-1]} "
        "(0-based) this training dataset was made for")
    with tf.control_dependencies([check]):
      return tf.switch_case(tf.cast(index, tf.int32), branches)

  ds = tf.data.Dataset.from_tensors(tf.constant(0)).flat_map(the_current_epoch)
  steps = int(datasets[0].cardinality())
  return ds.apply(tf.data.experimental.assert_cardinality(steps)) if steps >= 0 else ds


def make_classification_dataset(
    builder: tfds.core.DatasetBuilder,
    split: str,
    *,
    batch_size: int,
    training: bool,
    seed: int = 0,
    augment: bool = False,
    max_shift_pixels: int = 2,
    shuffle_buffer_examples: int = 60_000,
    flip: bool = False,
    color_jitter: float = 0.0,
    crop_scale: float = 1.0,
    epochs: Sequence[int] = (0,),
    input_context: Optional[tf.distribute.InputContext] = None,
) -> tf.data.Dataset:
  """Builds `(image, label)` batches: float32 images in [0, 1] HWC, int64 labels.

  Args:
    builder: a prepared TFDS builder (see `prepare_builder`).
    split: TFDS split, slicing allowed (`train[:90%]`).
    batch_size: global batch size in examples. With `input_context` (from
      `strategy.distribute_datasets_from_function`) each pipeline batches
      `input_context.get_per_replica_batch_size(batch_size)` instead; otherwise the
      global batch is produced and `tf.distribute`/Keras splits it across replicas.
    training: shuffle, optionally augment, and drop the last partial batch (static
      shapes for XLA; every step the same size for the learning-rate schedule).
    seed: seed of the shuffle order and of the augmentation. Same seed, same batches.
    augment: random translations by up to `max_shift_pixels`, and the photo augmentation
      of `flip` and `color_jitter` (`random_flip_and_color`), training only.
    max_shift_pixels: largest translation along each axis, in pixels.
    shuffle_buffer_examples: shuffle buffer, in examples.
    flip: with `augment`, mirror half the images left-right (photos, not digits).
    color_jitter: with `augment`, the largest brightness shift and contrast change (0: none).
    crop_scale: with `augment`, the smallest area of a random resized crop
      (`random_resized_crop`; 1: no crop).
    epochs: training: the epochs to produce, one full pass each, one after another; epoch
      `e` is shuffled and augmented from `epoch_seed(seed, e)` alone, so a run resumed at
      epoch `e` (`epochs=range(e, n)`) trains on exactly the batches an uninterrupted run
      trains on there. Iterating the dataset again gives the same batches again.
    input_context: shard the data for one of several input pipelines (multi-worker).

  Returns:
    A `tf.data.Dataset` of `(images [B, H, W, C] float32, labels [B] int64)`.
  """
  if batch_size <= 0:
    raise errors.InvalidValueError("Invalid value for `batch_size`: expected a positive integer. "
                                   f"Received: batch_size={batch_size!r}")
  ds = builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)
  if input_context is not None:
    if batch_size % input_context.num_replicas_in_sync:
      raise errors.InvalidValueError(
          "Invalid value for `batch_size`: expected a positive multiple of the number of "
          f"replicas ({input_context.num_replicas_in_sync}). Received: batch_size={batch_size}")
    batch_size = input_context.get_per_replica_batch_size(batch_size)
    # Shard examples, not files: MNIST-sized splits are a single file.
    if input_context.num_input_pipelines > 1:
      ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
  # Cache the small uint8 images, before anything random happens; every epoch reads it.
  # Everything after the shuffle works on whole batches: per-example maps cost more than
  # the small models' training steps on a 2-core CPU.
  ds = ds.cache()
  normalize = lambda images, labels: (normalize_images(images), labels)  # noqa: E731
  if not training:
    ds = ds.batch(batch_size, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.map(normalize, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

  def one_epoch(epoch):
    this_seed = epoch_seed(seed, epoch)
    # Batched per epoch (drop_remainder: static shapes, every step the same size).
    batches = ds.shuffle(shuffle_buffer_examples, seed=this_seed,
                         reshuffle_each_iteration=False).batch(batch_size, drop_remainder=True)
    if not (augment and (max_shift_pixels > 0 or flip or color_jitter or crop_scale < 1)):
      return batches.map(normalize, num_parallel_calls=tf.data.AUTOTUNE)
    # One stateless seed per batch, from the epoch's stream: augmentation is reproducible
    # and independent of parallelism.
    pairs = tf.data.Dataset.random(seed=this_seed).batch(2)

    def _augment(batch, pair):
      images, labels = normalize(*batch)
      images = random_resized_crop(images, tf.random.experimental.stateless_fold_in(pair, 2),
                                   min_scale=crop_scale)
      images = random_translate(images, max_shift_pixels, pair)
      images = random_flip_and_color(images, tf.random.experimental.stateless_fold_in(pair, 1),
                                     flip=flip, color_jitter=color_jitter)
      return images, labels

    return tf.data.Dataset.zip((batches, pairs)).map(_augment,
                                                     num_parallel_calls=tf.data.AUTOTUNE)

  ds = concatenate_epochs(one_epoch, epochs)
  return ds.prefetch(tf.data.AUTOTUNE)


def make_training_dataset(builder: tfds.core.DatasetBuilder, config,
                          epochs: Sequence[int] = (0,), **photo_augmentation
                          ) -> tf.data.Dataset:
  """`make_classification_dataset` of a recipe's training split for `epochs`: the one place
  its batch size, seed, augmentation and shuffle buffer are read from a
  `zoo.configs.TrainConfig` (the classifiers' and the generators' training data).
  `photo_augmentation`: `flip`, `color_jitter`, `crop_scale` (a classifier's task knobs)."""
  return make_classification_dataset(
      builder, config.train_split, batch_size=config.batch_size, training=True,
      seed=config.seed, augment=config.augment, max_shift_pixels=config.max_shift_pixels,
      shuffle_buffer_examples=config.shuffle_buffer_examples, epochs=epochs,
      **photo_augmentation)


def sample_training_images(builder: tfds.core.DatasetBuilder, config) -> tf.Tensor:
  """`config.log_images` training images as the model sees them (float32 [0, 1], shifted
  as the recipe augments), the first of the split (TFDS stores them shuffled). Read on
  their own: a batch drawn from the training pipeline fills its 60,000-image shuffle buffer
  and leaves its cache half-written, so the first epoch read the split twice."""
  ds = builder.as_dataset(split=config.train_split, as_supervised=True, shuffle_files=False)
  images, _ = next(iter(ds.take(config.log_images).batch(config.log_images)))
  images = normalize_images(images)
  if config.augment:
    images = random_translate(images, config.max_shift_pixels,
                              tf.constant([config.seed, 0], tf.int64))
  return images


def split_arrays(builder: tfds.core.DatasetBuilder, split: str, limit: Optional[int] = None):
  """The raw `(images uint8 [N, H, W, C], labels int64 [N])` of a split, as numpy arrays,
  in the split's stored order (for evaluation of exported models)."""
  ds = builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)
  if limit is not None:
    ds = ds.take(limit)
  images, labels = [], []
  for x, y in tfds.as_numpy(ds.batch(4096)):
    images.append(x)
    labels.append(y)
  return np.concatenate(images), np.concatenate(labels)
