"""Input pipeline tests: eagerly and inside tf.data, determinism, sharding, offline errors."""

import time

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from zoo import data
from zoo.data import tfds_input


@pytest.fixture
def mnist_builder(mock_mnist, mock_manual_dir, tmp_path):
  return data.prepare_builder("mnist", data_dir=str(tmp_path / "tfds"), manual_dir=mock_manual_dir)


def _first_batch(ds):
  images, labels = next(iter(ds))
  return images.numpy(), labels.numpy()


def test_batches_have_the_documented_shapes_dtypes_and_range(mnist_builder):
  ds = data.make_classification_dataset(mnist_builder, "train", batch_size=16, training=True)
  batches = list(ds)
  assert len(batches) == 64 // 16
  images, labels = batches[0]
  assert images.shape == (16, 28, 28, 1) and images.dtype == tf.float32
  assert labels.shape == (16,) and labels.dtype == tf.int64
  assert 0.0 <= float(tf.reduce_min(images)) and float(tf.reduce_max(images)) <= 1.0
  assert float(tf.reduce_max(images)) > 0.5  # Normalized, not all black.


def test_eval_keeps_the_last_partial_batch_training_drops_it(mnist_builder):
  evals = list(data.make_classification_dataset(mnist_builder, "test", batch_size=24,
                                                training=False))
  assert [int(b[0].shape[0]) for b in evals] == [24, 24, 16]
  trains = list(data.make_classification_dataset(mnist_builder, "train", batch_size=24,
                                                 training=True))
  assert [int(b[0].shape[0]) for b in trains] == [24, 24]


def test_same_seed_same_batches_other_seed_other_order(mnist_builder):
  make = lambda seed: data.make_classification_dataset(
      mnist_builder, "train", batch_size=64, training=True, seed=seed, augment=True)
  a, b, c = _first_batch(make(1)), _first_batch(make(1)), _first_batch(make(2))
  np.testing.assert_array_equal(a[0], b[0])
  np.testing.assert_array_equal(a[1], b[1])
  assert not np.array_equal(a[0], c[0])


def test_each_epoch_is_reshuffled_from_seed_and_epoch_alone(mnist_builder):
  def batches(epochs, seed=0):
    return [x.numpy() for x, _ in data.make_classification_dataset(
        mnist_builder, "train", batch_size=16, training=True, seed=seed, augment=True,
        epochs=epochs)]

  three = batches(range(3))
  assert len(three) == 3 * (64 // 16)
  first, second = np.stack(three[:4]), np.stack(three[4:8])
  assert not np.array_equal(first, second)  # Reshuffled (and re-augmented) every epoch.
  # A run resumed at epoch 2 gets what an uninterrupted one gets there.
  for a, b in zip(batches(range(1, 3)), three[4:], strict=True):
    np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(np.stack(batches(range(1))), first)  # Iterated again: the same.
  assert not np.array_equal(np.stack(batches(range(1), seed=1)), first)


def test_an_epoch_range_gives_each_iterator_the_current_epoch_alone(mnist_builder):
  """What `zoo.train` hands `fit()`: one epoch per iterator, the one `current` names, with
  the batches the concatenation has there; an epoch outside the range is an error."""
  make = lambda epochs: data.make_classification_dataset(
      mnist_builder, "train", batch_size=16, training=True, augment=True, epochs=epochs)
  three = [x.numpy() for x, _ in make(range(3))]
  epochs = data.EpochRange(1, 3)
  ds = make(epochs)
  assert int(ds.cardinality()) == 64 // 16  # One epoch's batches, known to fit().
  for epoch in (2, 1, 2):  # Any order: the variable, not the iterator count, decides.
    epochs.current.assign(epoch)
    got = [x.numpy() for x, _ in ds]
    np.testing.assert_array_equal(np.stack(got), np.stack(three[4 * epoch:4 * epoch + 4]))
  epochs.current.assign(0)
  with pytest.raises(tf.errors.InvalidArgumentError, match="not one of the epochs 1-2"):
    next(iter(ds))
  with pytest.raises(ValueError, match="expected at least one epoch"):
    data.EpochRange(3, 3)


def test_normalize_images_eager_and_in_dataset_map():
  images = tf.constant([[[[0]], [[255]]], [[[51]], [[102]]]], dtype=tf.uint8)
  eager = data.normalize_images(images).numpy()
  np.testing.assert_allclose(eager.ravel(), [0.0, 1.0, 0.2, 0.4], atol=1e-7)
  mapped = next(iter(tf.data.Dataset.from_tensors(images).map(data.normalize_images)))
  np.testing.assert_array_equal(mapped.numpy(), eager)


def test_random_flip_and_color_per_image_stateless_and_in_range():
  rng = np.random.default_rng(0)
  images = tf.constant(rng.uniform(0.2, 0.8, (16, 5, 7, 3)), tf.float32)
  seed = tf.constant([1, 2], tf.int64)
  flipped = tfds_input.random_flip_and_color(images, seed, flip=True).numpy()
  mirrored = [np.array_equal(out, image[:, ::-1]) for out, image in zip(flipped, images.numpy())]
  unchanged = [np.array_equal(out, image) for out, image in zip(flipped, images.numpy())]
  assert all(m or u for m, u in zip(mirrored, unchanged)) and 0 < sum(mirrored) < 16
  jittered = tfds_input.random_flip_and_color(images, seed, color_jitter=0.3).numpy()
  assert jittered.min() >= 0.0 and jittered.max() <= 1.0
  means = jittered.mean(axis=(1, 2, 3)) - images.numpy().mean(axis=(1, 2, 3))
  assert np.abs(means).max() <= 0.3 + 1e-6 and np.std(means) > 0.01  # Per image, bounded.
  again = tf.data.Dataset.from_tensors((images, seed)).map(
      lambda im, s: tfds_input.random_flip_and_color(im, s, flip=True, color_jitter=0.3))
  np.testing.assert_allclose(
      next(iter(again)).numpy(),
      tfds_input.random_flip_and_color(images, seed, flip=True, color_jitter=0.3), atol=1e-6)
  assert tfds_input.random_flip_and_color(images, seed) is images  # Nothing asked: as is.


def test_random_resized_crop_per_image_stateless_and_at_least_min_scale():
  """Images whose channels are their own row and column coordinates: a crop resized back
  spans, on each axis, the share of the side its box took, so the spans' product is the
  crop's area: between `min_scale` and 1, different from image to image."""
  rows, cols = np.meshgrid(np.linspace(0, 1, 33), np.linspace(0, 1, 33), indexing="ij")
  images = tf.constant(np.tile(np.stack([rows, cols], -1)[None], (32, 1, 1, 1)), tf.float32)
  seed = tf.constant([5, 6], tf.int64)
  cropped = tfds_input.random_resized_crop(images, seed, min_scale=0.3).numpy()
  assert cropped.shape == (32, 33, 33, 2)
  height = cropped[..., 0].max(axis=(1, 2)) - cropped[..., 0].min(axis=(1, 2))
  width = cropped[..., 1].max(axis=(1, 2)) - cropped[..., 1].min(axis=(1, 2))
  area = height * width
  assert area.min() >= 0.3 - 0.02 and area.max() <= 1.0 + 1e-6 and area.std() > 0.05
  ratio = height / width
  assert ratio.min() >= 3 / 4 - 0.05 and ratio.max() <= 4 / 3 + 0.05  # Where unclipped.
  mapped = next(iter(tf.data.Dataset.from_tensors((images, seed)).map(
      lambda im, s: tfds_input.random_resized_crop(im, s, min_scale=0.3)))).numpy()
  np.testing.assert_allclose(mapped, cropped, atol=1e-6)
  assert not np.allclose(tfds_input.random_resized_crop(
      images, tf.constant([7, 8], tf.int64), min_scale=0.3).numpy(), cropped)
  assert tfds_input.random_resized_crop(images, seed, min_scale=1.0) is images


def test_random_translate_eager_and_in_dataset_map():
  images = tf.reshape(tf.range(1, 8 * 36 + 1, dtype=tf.float32), (8, 6, 6, 1))
  seed = tf.constant([3, 4], tf.int64)
  eager = tfds_input.random_translate(images, 2, seed).numpy()
  mapped = next(iter(tf.data.Dataset.from_tensors((images, seed)).map(
      lambda im, s: tfds_input.random_translate(im, 2, s)))).numpy()
  np.testing.assert_array_equal(eager, mapped)
  assert eager.shape == (8, 6, 6, 1)
  np.testing.assert_array_equal(tfds_input.random_translate(images, 0, seed), images)
  shifts = set()
  for image, out in zip(images.numpy(), eager):
    # A shift: every non-zero value is the original pixel at a fixed offset (dy, dx).
    (dy, dx), = {(int(y - y0), int(x - x0))
                 for (y, x, _), v in np.ndenumerate(out) if v > 0
                 for (y0, x0, _) in [np.argwhere(image == v)[0]]}
    assert abs(dy) <= 2 and abs(dx) <= 2
    shifts.add((dy, dx))
  assert len(shifts) > 1  # Each image of the batch has its own shift.


def test_input_context_shards_examples_and_batches_per_replica(mnist_builder):
  def shard(i):
    ctx = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=i,
                                     num_replicas_in_sync=4)
    return list(data.make_classification_dataset(mnist_builder, "test", batch_size=16,
                                                 training=False, input_context=ctx))
  a, b = shard(0), shard(1)
  assert all(int(x.shape[0]) == 4 for x, _ in a)  # 16 global / 4 replicas.
  sums = lambda batches: sorted(float(s) for x, _ in batches for s in tf.reduce_sum(x, [1, 2, 3]))
  everything = sums(list(data.make_classification_dataset(mnist_builder, "test", batch_size=16,
                                                          training=False)))
  assert len(sums(a)) + len(sums(b)) == len(everything) == 64
  np.testing.assert_allclose(sorted(sums(a) + sums(b)), everything, rtol=1e-6)


def test_batch_not_divisible_by_replicas_is_refused(mnist_builder):
  ctx = tf.distribute.InputContext(num_input_pipelines=1, input_pipeline_id=0,
                                   num_replicas_in_sync=4)
  with pytest.raises(ValueError, match=r"expected a positive multiple of the number of "
                                       r"replicas \(4\)\. Received: batch_size=10"):
    data.make_classification_dataset(mnist_builder, "test", batch_size=10, training=False,
                                     input_context=ctx)


def test_fashion_mnist_works_unchanged(mock_mnist, mock_manual_dir, tmp_path):
  builder = data.prepare_builder("fashion_mnist", data_dir=str(tmp_path),
                                 manual_dir=mock_manual_dir)
  info = data.dataset_info(builder)
  assert info.image_shape == (28, 28, 1) and info.num_classes == 10
  assert info.class_names[0] == "T-shirt/top"
  images, _ = _first_batch(data.make_classification_dataset(builder, "train", batch_size=8,
                                                            training=True, augment=True))
  assert images.shape == (8, 28, 28, 1)


def test_not_prepared_and_offline_fails_fast_with_instructions(tmp_path):
  start = time.perf_counter()
  with pytest.raises(data.DatasetNotAvailableError) as e:
    data.prepare_builder("mnist", data_dir=str(tmp_path / "empty"))
  assert time.perf_counter() - start < 10
  message = str(e.value)
  assert "'mnist' is not prepared in" in message and str(tmp_path / "empty") in message
  assert "--manual_dir" in message and "train-images-idx3-ubyte.gz" in message
  assert "t10k-labels-idx1-ubyte.gz" in message and "--download" in message


def test_manual_dir_missing_files_are_named(tmp_path):
  (tmp_path / "m").mkdir()
  (tmp_path / "m" / "train-images-idx3-ubyte.gz").write_bytes(b"")
  with pytest.raises(data.DatasetNotAvailableError,
                     match=r"lacks \['train-labels-idx1-ubyte\.gz', 't10k-images-idx3-ubyte\.gz', "
                           r"'t10k-labels-idx1-ubyte\.gz'\]"):
    data.prepare_builder("mnist", data_dir=str(tmp_path / "d"), manual_dir=str(tmp_path / "m"))


def test_manual_dir_that_is_not_a_directory(tmp_path):
  with pytest.raises(data.DatasetNotAvailableError,
                     match=r"Invalid value for `manual_dir`: '.*nowhere' is not a directory"):
    data.prepare_builder("mnist", data_dir=str(tmp_path), manual_dir=str(tmp_path / "nowhere"))


def test_unknown_dataset_name():
  with pytest.raises(ValueError, match=r"Invalid value for `dataset`: 'mnistt' is not a "
                                       r"tensorflow-datasets name"):
    data.prepare_builder("mnistt")


def test_preparing_lines_show_the_home_folder_as_a_tilde(monkeypatch, tmp_path):
  from zoo.data.quiet import shown_path
  monkeypatch.setenv("HOME", str(tmp_path / "me"))
  assert shown_path(str(tmp_path / "me" / "tensorflow_datasets")) == "~/tensorflow_datasets"
  assert shown_path(str(tmp_path / "me")) == "~"
  assert shown_path(str(tmp_path / "meadow" / "tfds")) == str(tmp_path / "meadow" / "tfds")
  assert shown_path("/data/tfds") == "/data/tfds"
