"""Loop behaviour as Keras callbacks: NaN guard, EMA swaps, TensorBoard images, timing."""

from __future__ import annotations

import math
import time

import keras
import numpy as np
import tensorflow as tf

from zoo import drawing, errors
from zoo.data import tfds_input


class NonFiniteLossError(errors.ZooError, FloatingPointError):
  """Training stopped because the loss became NaN or infinite."""


def steps_done(batch: int, params: dict) -> int:
  """Steps of the epoch done at `on_train_batch_end(batch)`. With `steps_per_execution` > 1
  Keras reports each group's last step as if the group were full (8 for steps 6-7 of an
  epoch of 8): capped at the epoch's steps (`params["steps"]`) when Keras knows them."""
  return min(batch + 1, params.get("steps") or batch + 1)


class StopOnNonFiniteLoss(keras.callbacks.Callback):
  """Stops training the moment the loss is NaN or infinite, before anything is saved.

  Unlike `keras.callbacks.TerminateOnNaN`, which lets the epoch end (so checkpoint
  callbacks then save the broken weights), this raises from the batch: no
  `on_epoch_end` runs, so the last good checkpoint and backup stay untouched.

  Args:
    where: text naming the run, used in the error message.
  """

  def __init__(self, where: str = "this run"):
    super().__init__()
    self.where = where
    self._epoch = 0

  def on_epoch_begin(self, epoch, logs=None):
    self._epoch = epoch

  def on_train_batch_end(self, batch, logs=None):
    loss = (logs or {}).get("loss")
    if loss is not None and not math.isfinite(float(loss)):
      raise NonFiniteLossError(
          f"Training of {self.where} stopped: the loss became {float(loss)} at epoch "
          f"{self._epoch + 1}, step {steps_done(batch, self.params)}. Nothing was saved "
          "from this epoch; the last good checkpoint and backup are kept. Try a lower "
          "learning_rate.")


class ResumableSwapEMAWeights(keras.callbacks.SwapEMAWeights):
  """`keras.callbacks.SwapEMAWeights(swap_on_epoch=True)` that also survives a resume.

  With `swap_on_epoch=True` the averaged (EMA) weights sit in the model from each epoch's
  end to the next epoch's start, so validation, `ModelCheckpoint` and `BackupAndRestore`
  (placed after this callback) all see them, and the raw weights wait in the optimizer's
  EMA slots. A backup restored by `BackupAndRestore` is in that swapped state; Keras's
  callback starts out assuming it is not and would go on training from the averages.

  Args:
    resuming: True when `BackupAndRestore` is about to restore a backup.
  """

  def __init__(self, resuming: bool):
    super().__init__(swap_on_epoch=True)
    self.resuming = resuming

  def on_train_begin(self, logs=None):
    self._ema_weights_in_model = self.resuming


def seed_generators(model: keras.Model) -> list:
  """Every `keras.random.SeedGenerator` of `model` and its layers (dropout's, a GAN's
  latents'), in a fixed order: the layers' own (Keras tracks them in `_seed_generators`)."""
  found, seen = [], set()
  for layer in model._flatten_layers(include_self=True, recursive=True):  # pylint: disable=protected-access
    for generator in getattr(layer, "_seed_generators", ()):
      if id(generator) not in seen:
        seen.add(id(generator))
        found.append(generator)
  return found


class EpochSeeds(keras.callbacks.Callback):
  """Reseeds the model's random layers at each epoch's start from `(seed, epoch)` alone.

  Keras checkpoints leave the states of `keras.random.SeedGenerator`s out (a layer saves
  its weights, not its generators), so a run resumed at epoch `e` would draw its dropout
  masks and a GAN's latents as a fresh process does, from epoch 1's stream. Reseeded here,
  generator `i` of `seed_generators(model)` starts epoch `e` at
  `[epoch_seed(epoch_seed(seed, e), i), 0]` (`zoo.data.tfds_input.epoch_seed`) however the
  run got there, as the input pipeline's shuffle and augmentation do.

  Args:
    seed: the run's seed (`config.seed`).
  """

  def __init__(self, seed: int):
    super().__init__()
    self.seed = seed

  def on_epoch_begin(self, epoch, logs=None):
    base = tfds_input.epoch_seed(self.seed, epoch)
    for i, generator in enumerate(seed_generators(self.model)):
      state = generator.state
      state.assign(np.array([tfds_input.epoch_seed(base, i), 0],
                            dtype=keras.backend.standardize_dtype(state.dtype)))


class CurrentEpoch(keras.callbacks.Callback):
  """Sets an `EpochRange`'s `current` variable at each epoch's start, before `fit()` makes
  that epoch's data iterator: the training data is then the epoch's own (`zoo.data.
  concatenate_epochs`), however many epochs this process has run.

  Args:
    variable: `zoo.data.EpochRange.current`.
  """

  def __init__(self, variable: tf.Variable):
    super().__init__()
    self.variable = variable

  def on_epoch_begin(self, epoch, logs=None):
    self.variable.assign(epoch)


class LearningRates(keras.callbacks.Callback):
  """Adds `<name>_learning_rate` to each epoch's logs for the model's optimizers held in
  attributes other than `optimizer` (a GAN's `d_optimizer` and `g_optimizer`): Keras's
  TensorBoard callback logs only `model.optimizer`'s rate, which a GAN does not have.

  Args:
    attributes: log name -> the model attribute holding the optimizer, e.g.
      `{"d": "d_optimizer"}` (TensorBoard tag `epoch_d_learning_rate`).
  """

  def __init__(self, attributes: dict):
    super().__init__()
    self.attributes = dict(attributes)

  def on_epoch_end(self, epoch, logs=None):
    if logs is None:
      return
    for name, attribute in self.attributes.items():
      optimizer = getattr(self.model, attribute)
      optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # Loss-scaled (float16).
      logs[f"{name}_learning_rate"] = float(keras.ops.convert_to_numpy(optimizer.learning_rate))


class ImageSamples(keras.callbacks.Callback):
  """Writes a few input images of a dataset to TensorBoard when training starts.

  Args:
    log_dir: TensorBoard directory (a sub-folder `images` is written).
    images: float images in [0, 1], shape [N, H, W, C].
    name: the summary's name.
  """

  def __init__(self, log_dir: str, images, name: str = "train_inputs"):
    super().__init__()
    self.log_dir = log_dir
    self.images = images
    self.name = name

  def on_train_begin(self, logs=None):
    with tf.summary.create_file_writer(f"{self.log_dir}/images").as_default():
      tf.summary.image(self.name, self.images, step=0, max_outputs=len(self.images))


class ConfusionMatrix(keras.callbacks.Callback):
  """Writes the confusion matrix on `dataset` to TensorBoard, as an image and as text.

  The two have tags of their own (`confusion_matrix`, `confusion_matrix_counts`):
  TensorBoard assigns each tag to one plugin, so under one shared tag it shows only one.

  Args:
    log_dir: TensorBoard directory (a sub-folder `validation` is written).
    dataset: batches of (images, labels).
    class_names: label names, in label order.
    every_epochs: write every N epochs, and always after the last one.
  """

  def __init__(self, log_dir, dataset, class_names, every_epochs: int = 0):
    super().__init__()
    self.log_dir = log_dir
    self.dataset = dataset
    self.class_names = list(class_names)
    self.every_epochs = every_epochs
    self._last_epoch = -1

  def compute(self) -> np.ndarray:
    n = len(self.class_names)
    matrix = np.zeros((n, n), dtype=np.int64)
    for images, labels in self.dataset:
      # A direct call, not predict_on_batch: that one is distributed, and under a
      # multi-worker strategy it gathers every worker's copy of the batch.
      pred = np.argmax(self.model(images, training=False), axis=-1)
      np.add.at(matrix, (labels.numpy(), pred), 1)
    return matrix

  def _write(self, step):
    matrix = self.compute()
    header = "| true \\ predicted | " + " | ".join(self.class_names) + " |"
    sep = "|" + "---|" * (len(self.class_names) + 1)
    body = ["| " + name + " | " + " | ".join(str(v) for v in row) + " |"
            for name, row in zip(self.class_names, matrix)]
    with tf.summary.create_file_writer(f"{self.log_dir}/validation").as_default():
      tf.summary.image("confusion_matrix", drawing.confusion_matrix_image(matrix),
                       step=step)
      tf.summary.text("confusion_matrix_counts", "\n".join([header, sep] + body), step=step)

  def on_epoch_end(self, epoch, logs=None):
    self._last_epoch = epoch
    if self.every_epochs and (epoch + 1) % self.every_epochs == 0:
      self._write(epoch)

  def on_train_end(self, logs=None):
    if self._last_epoch >= 0 and not (
        self.every_epochs and (self._last_epoch + 1) % self.every_epochs == 0):
      self._write(self._last_epoch)


class EpochTensorBoard(keras.callbacks.TensorBoard):
  """Keras's TensorBoard callback writing once per epoch, without its per-batch work.

  At `update_freq="epoch"` Keras still calls `tf.summary.scalar` for every metric after
  every batch, into no writer: ~0.25 ms of each training step's critical path (0.5 s of
  the two epochs of `mnist_cnn --epochs=2`, measured with py-spy). Here only the
  per-epoch settings exist (no graph, no profiling, no steps per second), so nothing is
  left to do per batch.
  """

  def __init__(self, log_dir: str):
    super().__init__(log_dir, update_freq="epoch", write_graph=False, profile_batch=0,
                     write_steps_per_second=False)

  def on_train_batch_end(self, batch, logs=None):
    pass


class EpochTimer(keras.callbacks.Callback):
  """Records each epoch's training wall time in seconds, validation excluded.

  The time runs from `on_epoch_begin` to the end of the epoch's last training batch,
  so the validation pass that `fit` runs afterwards is not counted. Results are in
  `self.train_seconds` (one float per epoch) and in the epoch logs as `train_seconds`.
  """

  def __init__(self):
    super().__init__()
    self.train_seconds: list[float] = []

  def on_epoch_begin(self, epoch, logs=None):
    self._start = self._last = time.perf_counter()

  def on_train_batch_end(self, batch, logs=None):
    self._last = time.perf_counter()

  def on_epoch_end(self, epoch, logs=None):
    self.train_seconds.append(self._last - self._start)
    if logs is not None:
      logs["train_seconds"] = self.train_seconds[-1]


class EpochLogs(EpochTimer):
  """`EpochTimer` that also keeps the given keys of each epoch's logs (NaN when absent),
  e.g. `val_accuracy` for time-to-accuracy, or a detector's `map`.

  Args:
    keys: the log keys to keep; `self.values[key]` is one float per epoch.
  """

  def __init__(self, keys):
    super().__init__()
    self.values = {k: [] for k in keys}

  def on_epoch_end(self, epoch, logs=None):
    super().on_epoch_end(epoch, logs)
    for key, values in self.values.items():
      values.append(float((logs or {}).get(key, float("nan"))))


class TimeBudget(keras.callbacks.Callback):
  """Stops `fit()` at the first step boundary after `seconds` of fitting (from
  `on_train_begin`, so tracing and compilation count), and records what was done: `steps`,
  `epochs_started` and `elapsed` seconds (benchmarks at equal wall time). Steps are
  counted from the batch index Keras reports, so a group of `steps_per_execution` steps
  counts as its size (an epoch's last, short group as what is left of the epoch).

  Args:
    seconds: the budget.
  """

  def __init__(self, seconds: float):
    super().__init__()
    self.seconds = seconds
    self.steps = 0
    self.epochs_started = 0

  def on_train_begin(self, logs=None):
    self.start = time.perf_counter()

  def on_epoch_begin(self, epoch, logs=None):
    self.epochs_started += 1
    self._steps_before_epoch = self.steps

  def on_train_batch_end(self, batch, logs=None):
    self.steps = self._steps_before_epoch + steps_done(batch, self.params)
    self.elapsed = time.perf_counter() - self.start
    if self.elapsed >= self.seconds:
      self.model.stop_training = True


class SampleGrid(keras.callbacks.Callback):
  """Writes a grid of images made from the model to TensorBoard every epoch (step =
  epoch): a generator's samples from a fixed latent batch, so the same latents are seen
  improving, or a detector's boxes drawn on fixed validation images.

  Args:
    log_dir: TensorBoard directory (a sub-folder named `tag` is written).
    sample: `sample(model) -> uint8 images [N, H, W, C]`; for a conditional generator,
      row r holding class r.
    rows: rows of the grid.
    tag: the TensorBoard image tag.
  """

  def __init__(self, log_dir: str, sample, rows: int, tag: str = "samples"):
    super().__init__()
    self.log_dir = log_dir
    self.sample = sample
    self.rows = rows
    self.tag = tag

  def on_epoch_end(self, epoch, logs=None):
    grid = drawing.image_grid(self.sample(self.model), self.rows)
    with tf.summary.create_file_writer(f"{self.log_dir}/{self.tag}").as_default():
      tf.summary.image(self.tag, grid[None], step=epoch)


class PeriodicMetrics(keras.callbacks.Callback):
  """Adds metrics measured by a function of the model to the epoch logs every N epochs
  (and after the last epoch), so TensorBoard and the progress lines show them: a
  generator's FID, a detector's COCO mAP. Place it before the TensorBoard callback.

  Args:
    measure: `measure(model) -> dict`.
    keys: the keys of that dict to log (scalars).
    every_epochs: measure every N epochs (and after the last one); 0 = never.
  """

  def __init__(self, measure, keys, every_epochs: int = 1):
    super().__init__()
    self.measure = measure
    self.keys = tuple(keys)
    self.every_epochs = every_epochs

  def on_epoch_end(self, epoch, logs=None):
    last = epoch + 1 == self.params.get("epochs")
    if logs is None or not self.every_epochs or ((epoch + 1) % self.every_epochs and not last):
      return
    result = self.measure(self.model)
    logs.update({k: result[k] for k in self.keys if k in result})


class GeneratorQuality(PeriodicMetrics):
  """`PeriodicMetrics` of a generator's quality (see `zoo.quality`): `fid`,
  `coverage_min`, `coverage_max`, `mean_confidence` (and `label_agreement_min` when
  conditional).

  Args:
    measure: `measure(model) -> dict` from `zoo.quality.generator_quality`.
    every_epochs: measure every N epochs (and after the last one); 0 = never.
  """

  KEYS = ("fid", "coverage_min", "coverage_max", "mean_confidence", "label_agreement_min")

  def __init__(self, measure, every_epochs: int = 1):
    super().__init__(measure, self.KEYS, every_epochs)


class GeneratorEMA(keras.callbacks.Callback):
  """Updates a `zoo.models.gan.GAN`'s weight-averaged generator after every train step
  (`GAN.update_sampler`), outside the distributed step so that a mirrored variable is
  assigned once, in cross-replica context. The average is a variable of the model, so
  checkpoints and `BackupAndRestore` keep it and a resumed run goes on averaging."""

  def on_train_batch_end(self, batch, logs=None):
    self.model.update_sampler()
