"""End-to-end tests of scripts/train.py and zoo.train on mock data: every recipe trains,
writes its run directory, resumes, and refuses bad input."""

import importlib
import json
import logging
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from absl import flags
from absl.testing import flagsaver

from tests import recipes
from tests.data import image_folders
from tests.conftest import REPO
from zoo import callbacks as zoo_callbacks
from zoo import flags as zoo_flags
from zoo import registry, rundir, train
from zoo.configs import TrainConfig


@pytest.fixture(scope="session")
def train_script():
  """The command behind scripts/train.py and zoo-train; importing it defines its absl flags,
  once per session."""
  return importlib.import_module("zoo.commands.train")


def run_train_script(train_script, argv):
  with flagsaver.flagsaver():
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["train.py", *argv])
    train_script.main(["train.py"])


SHRINK = recipes.SHRINK


def test_every_user_recipe_has_a_smoke_test():
  assert set(SHRINK) == set(registry.recipe_names())


# The datasets each task's recipes are smoke-tested on: mocked TFDS data, and for the
# classifiers `folder`, a folder of labelled images the test writes (3 classes of 8 images,
# `--dataset=folder:DIR`; both GANs train on folders in tests/test_your_own_images.py, and
# Fashion-MNIST, smoke-tested here before, is prepared in tests/data/test_pipeline.py).
_DATASETS = {"classification": ["mnist", "folder"], "generation": ["mnist"],
             "detection": ["mnist_detection"]}
# Recipes for photos only: MobileNetV2 needs 32 px or more.
_RECIPE_DATASETS = {"image_classifier": ["folder"]}


@pytest.mark.parametrize("recipe, dataset", [
    (r, d) for r in sorted(SHRINK)
    for d in _RECIPE_DATASETS.get(r, _DATASETS[registry.get_config(r).task])])
def test_train_script_end_to_end(recipe, dataset, train_script, mock_manual_dir, tmp_path,
                                 request):
  model_dir = tmp_path / "run"
  if dataset == "folder":  # Real images: TFDS's mock would replace them.
    dataset = f"folder:{image_folders.write_classes(tmp_path / 'shapes', per_class=8)}"
  else:
    request.getfixturevalue("mock_mnist")
  run_train_script(train_script, [
      f"--model={recipe}", f"--model_dir={model_dir}", f"--dataset={dataset}", "--epochs=1",
      "--batch_size=16", f"--data_dir={tmp_path / 'tfds'}", f"--manual_dir={mock_manual_dir}",
      "--set=eval_batch_size=16", *SHRINK[recipe]])
  config = json.loads((model_dir / "config.json").read_text())
  assert config["dataset"] == dataset and config["train_epochs"] == 1
  card = json.loads((model_dir / "run_card.json").read_text())
  assert card["versions"]["tensorflow"].startswith("2.")
  # 64 mocked examples, or 18 of the folder's 24 (6 held out as `valid`).
  assert card["git_commit"] and card["steps_per_epoch"] == (
      18 // 16 if dataset.startswith("folder:") else 64 // 16)
  metrics = json.loads((model_dir / "metrics.json").read_text())
  assert metrics["task"] == config["task"] == registry.get_config(recipe).task
  assert (model_dir / train.CHECKPOINT).exists()
  events = {os.path.relpath(os.path.join(d, f), model_dir / "tensorboard").split(os.sep)[0]
            for d, _, files in os.walk(model_dir / "tensorboard") for f in files}
  if config["task"] == "classification":
    assert 0.0 <= metrics["accuracy"] <= 1.0 and np.isfinite(metrics["loss"])
    assert metrics["num_examples"] > 0
    assert {"train", "validation", "images"} <= events
  elif config["task"] == "detection":
    assert 0.0 <= metrics["map"] <= metrics["map_50"] <= 1.0
    assert metrics["num_images"] > 0 and set(metrics["per_class_ap"]) == set("0123456789")
    assert {"train", "validation", "validation_detections"} <= events
  else:
    assert metrics["fid"] >= 0 and np.isfinite(metrics["fid"])
    assert metrics["num_samples"] == 64
    assert abs(sum(metrics["class_coverage"]) - 1) < 1e-3
    assert 0 <= metrics["mean_confidence"] <= 1
    assert ("label_agreement_min" in metrics) == recipe.startswith("cdcgan")
    assert {"train", "samples"} <= events


def _scalar_and_image_tags(log_dir):
  import tensorflow as tf
  tags = set()
  for root, _, files in os.walk(log_dir):
    for f in files:
      for event in tf.compat.v1.train.summary_iterator(os.path.join(root, f)):
        for value in event.summary.value:
          tags.add(f"{os.path.basename(root)}/{value.tag}")
  return tags


def _tensorboard_plugin_tags(run_dir):
  """{plugin: {tag}} as TensorBoard itself reads the run (its event accumulator, default
  size guidance): each tag belongs to the one plugin whose data TensorBoard shows for it."""
  from tensorboard.backend.event_processing import plugin_event_accumulator
  acc = plugin_event_accumulator.EventAccumulator(str(run_dir))
  acc.Reload()
  return {plugin: set(acc.PluginTagToContent(plugin))
          for plugin in ("scalars", "images", "text")
          if plugin in acc.ActivePlugins()}


def test_tensorboard_shows_scalars_learning_rate_images_and_confusion_matrix(
    mock_mnist, mock_manual_dir, tmp_path):
  config = recipes.mnist_mlp_tiny()
  train.train_and_evaluate(config, str(tmp_path / "run"), data_dir=str(tmp_path / "tfds"),
                           manual_dir=mock_manual_dir)
  log_dir = tmp_path / "run" / "tensorboard"
  tags = _scalar_and_image_tags(log_dir)
  for tag in ["train/epoch_loss", "train/epoch_accuracy", "train/epoch_learning_rate",
              "validation/epoch_loss", "validation/epoch_accuracy"]:
    assert tag in tags, sorted(tags)
  assert _tensorboard_plugin_tags(log_dir / "images")["images"] == {"train_inputs"}
  validation = _tensorboard_plugin_tags(log_dir / "validation")
  assert "confusion_matrix" in validation["images"], validation
  assert "confusion_matrix_counts" in validation["text"], validation


def test_rerun_resumes_instead_of_starting_over(mock_mnist, mock_manual_dir, tmp_path):
  config = recipes.mnist_mlp_tiny().replace(train_epochs=3)
  kwargs = dict(data_dir=str(tmp_path / "tfds"), manual_dir=mock_manual_dir)
  model_dir = str(tmp_path / "run")
  with pytest.raises(train.TrainingInterrupted,
                     match=r"Stopped at epoch 3/3 \(2 completed and saved in .*\); rerun the "
                           r"same command to resume\."):
    train.train_and_evaluate(config, model_dir, extra_callbacks=[recipes.Interrupt(2)], **kwargs)
  metrics = train.train_and_evaluate(config, model_dir, **kwargs)
  assert metrics["epochs_run_this_invocation"] == 1  # Epochs 1-2 were not redone.
  written = (tmp_path / "run" / "metrics.json").read_bytes()
  again = train.train_and_evaluate(config, model_dir, **kwargs)
  assert again == metrics  # Complete: nothing trained or evaluated again...
  assert (tmp_path / "run" / "metrics.json").read_bytes() == written  # ...or overwritten.


def test_a_small_dataset_trains_at_least_min_train_steps_and_resumes_there(
    mock_mnist, mock_manual_dir, tmp_path, caplog):
  """64 mocked images in batches of 8 are 8 steps an epoch: min_train_steps=20 makes the one
  epoch asked for three (24 steps), said once, recorded in the run card, schedule included;
  config.json keeps the config as given, so the same command resumes past train_epochs."""
  config = recipes.mnist_mlp_tiny().replace(min_train_steps=20, lr_schedule="cosine")
  assert [train.epochs_to_train(config, n) for n in (8, 20, 21, 1000)] == [3, 1, 1, 1]
  assert train.epochs_to_train(config.replace(min_train_steps=0), 8) == 1
  kwargs = dict(data_dir=str(tmp_path / "tfds"), manual_dir=mock_manual_dir)
  run = tmp_path / "run"
  with caplog.at_level(logging.INFO, logger="zoo"), pytest.raises(train.TrainingInterrupted):
    train.train_and_evaluate(config, str(run), extra_callbacks=[recipes.Interrupt(2)], **kwargs)
  assert caplog.text.count("Training 3 epochs, not train_epochs=1: 8 steps an epoch, and the "
                           "recipe trains at least min_train_steps=20") == 1
  assert rundir.completed_epochs(str(run)) == 2
  metrics = train.train_and_evaluate(config, str(run), **kwargs)
  assert metrics["epochs_run_this_invocation"] == 1 and rundir.completed_epochs(str(run)) == 3
  card = rundir.read_json(str(run), rundir.RUN_CARD)
  assert card["train_epochs"] == 3 and card["config"]["train_epochs"] == 1
  assert rundir.read_json(str(run), rundir.CONFIG) == json.loads(config.to_json())
  optimizer = keras.saving.load_model(str(run / rundir.CHECKPOINT)).optimizer
  decay = optimizer.get_config()["learning_rate"]["config"]
  assert decay["decay_steps"] == 24  # The cosine decays over the 24 steps trained.


def test_epochs_on_the_command_line_are_exactly_those():
  values = type("Flags", (), {"model": "mnist_cnn", "set": [], **{
      flag: None for flag in zoo_flags.FLAG_FIELDS}})()
  assert zoo_flags.config_from_flags(values).min_train_steps > 0  # The recipe's floor.
  values.epochs = 2
  assert zoo_flags.config_from_flags(values).min_train_steps == 0
  values.set = ["min_train_steps=100"]
  assert zoo_flags.config_from_flags(values).min_train_steps == 100


def test_steps_per_execution_trains_the_same_weights_epoch_by_epoch(
    mock_mnist, mock_manual_dir, tmp_path):
  """Several steps per call (3, which does not divide the 8 steps of an epoch) give the
  weights of one step per call, bit for bit, and no epoch reads into the next: 24 steps in
  3 epochs, each ending with a short group (callbacks get the step a group would end at
  if full: 8 for steps 6-7)."""
  config = recipes.mnist_mlp_tiny().replace(train_epochs=3)
  kwargs = dict(data_dir=str(tmp_path / "tfds"), manual_dir=mock_manual_dir)

  class Calls(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
      self.batches = []

    def on_train_batch_end(self, batch, logs=None):
      self.batches.append(batch)

  weights, steps, calls = {}, {}, {}
  for k in (1, 3):
    keras.backend.clear_session()
    model_dir = tmp_path / f"k{k}"
    calls[k] = Calls()
    train.train_and_evaluate(config.replace(steps_per_execution=k), str(model_dir),
                             extra_callbacks=[calls[k]], **kwargs)
    card = json.loads((model_dir / "run_card.json").read_text())
    assert (card["steps_per_execution"], card["steps_per_epoch"]) == (k, 8)
    model = keras.saving.load_model(model_dir / train.CHECKPOINT)
    weights[k], steps[k] = model.get_weights(), int(model.optimizer.iterations)
  assert steps == {1: 24, 3: 24}
  assert calls[1].batches == list(range(8)) * 3 and calls[3].batches == [2, 5, 8] * 3
  for a, b in zip(weights[1], weights[3], strict=True):
    np.testing.assert_array_equal(a, b)


def test_model_dir_with_another_config_is_refused(mock_mnist, mock_manual_dir, tmp_path):
  kwargs = dict(data_dir=str(tmp_path / "tfds"), manual_dir=mock_manual_dir)
  config = recipes.mnist_mlp_tiny()
  train.train_and_evaluate(config, str(tmp_path / "run"), **kwargs)
  with pytest.raises(ValueError, match=r"holds a run with a different config \(fields "
                                       r"\['learning_rate'\] differ\)"):
    train.train_and_evaluate(config.replace(learning_rate=0.5), str(tmp_path / "run"), **kwargs)
  # Steps per call change how it runs, not what it computes: the same run (here complete).
  metrics = train.train_and_evaluate(config.replace(steps_per_execution=4),
                                     str(tmp_path / "run"), **kwargs)
  assert metrics["epochs_run_this_invocation"] == 1


def test_a_run_written_before_ema_warmup_resumes_as_it_ran(mock_mnist, mock_manual_dir,
                                                           tmp_path):
  """A config.json without `ema_warmup` ran Keras's fixed-momentum average: the same flags
  resume it with that average, not refused as another config and not warmed up."""
  kwargs = dict(data_dir=str(tmp_path / "tfds"), manual_dir=mock_manual_dir)
  config = recipes.mnist_mlp_tiny().replace(train_epochs=2, ema_momentum=0.9)
  run = tmp_path / "run"
  with pytest.raises(KeyboardInterrupt):
    train.train_and_evaluate(config.replace(ema_warmup=False), str(run),
                             extra_callbacks=[recipes.Interrupt(1)], **kwargs)
  stored = json.loads((run / rundir.CONFIG).read_text())
  del stored["ema_warmup"]  # As versions before it wrote it.
  (run / rundir.CONFIG).write_text(json.dumps(stored))
  assert config.ema_warmup and not TrainConfig.from_dict(stored).ema_warmup
  assert train._resumed_config(str(run), config) == config.replace(ema_warmup=False)
  metrics = train.train_and_evaluate(config, str(run), **kwargs)
  assert metrics["epochs_run_this_invocation"] == 1
  optimizer = keras.saving.load_model(str(run / rundir.CHECKPOINT)).optimizer
  assert type(optimizer) is keras.optimizers.AdamW  # pylint: disable=unidiomatic-typecheck


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_the_weight_average_warms_up_as_tensorflows_does(name):
  """Step n averages with momentum min(0.99, (1 + n) / (10 + n)) (0 at the first step):
  TensorFlow's ExponentialMovingAverage(num_updates=n)."""
  config = recipes.mnist_mlp_tiny().replace(optimizer=name, learning_rate=0.1,
                                            ema_momentum=0.99, weight_decay=0.0)
  optimizer = train.make_optimizer(config, steps_per_epoch=100)
  assert optimizer.get_config()["ema_momentum"] == 0.99
  variable = keras.Variable(np.zeros(3, "float32"))
  optimizer.build([variable])
  expected = np.zeros(3)
  for n in range(40):
    optimizer.apply([np.full(3, n + 1.0, "float32")], [variable])
    momentum = 0.0 if n == 0 else min(0.99, (1 + n) / (10 + n))
    expected = momentum * expected + (1 - momentum) * variable.numpy()
    np.testing.assert_allclose(optimizer._model_variables_moving_average[0].numpy(),
                               expected, rtol=1e-5)
  plain = train.make_optimizer(config.replace(ema_warmup=False), steps_per_epoch=100)
  assert type(plain).__module__.startswith("keras")


class _PoisonWeights(keras.callbacks.Callback):
  """Sets the logits kernel to NaN at the first batch of a given epoch (0-based)."""

  def __init__(self, at_epoch):
    super().__init__()
    self.at_epoch = at_epoch
    self._epoch = 0

  def on_epoch_begin(self, epoch, logs=None):
    self._epoch = epoch

  def on_train_batch_begin(self, batch, logs=None):
    if self._epoch == self.at_epoch and batch == 0:
      kernel = self.model.get_layer("logits").kernel
      kernel.assign(np.full(kernel.shape, np.nan, dtype="float32"))


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_good_checkpoint(
    mock_mnist, mock_manual_dir, tmp_path):
  config = recipes.mnist_mlp_tiny().replace(train_epochs=3)
  model_dir = tmp_path / "run"
  kwargs = dict(data_dir=str(tmp_path / "tfds"), manual_dir=mock_manual_dir)
  with pytest.raises(KeyboardInterrupt):
    train.train_and_evaluate(config, str(model_dir), extra_callbacks=[recipes.Interrupt(1)], **kwargs)
  checkpoint = (model_dir / train.CHECKPOINT).read_bytes()
  backup = (model_dir / "backup" / "latest.weights.h5").read_bytes()
  with pytest.raises(zoo_callbacks.NonFiniteLossError,
                     match=r"loss became nan at epoch 2, step 1\. Nothing was saved"):
    train.train_and_evaluate(config, str(model_dir), extra_callbacks=[_PoisonWeights(1)], **kwargs)
  assert (model_dir / train.CHECKPOINT).read_bytes() == checkpoint
  assert (model_dir / "backup" / "latest.weights.h5").read_bytes() == backup
  reloaded = keras.saving.load_model(model_dir / train.CHECKPOINT)
  assert all(np.isfinite(w).all() for w in reloaded.get_weights())


@pytest.mark.parametrize("argv, message", [
    (["--model=mnist_resnet"], r"Unknown recipe 'mnist_resnet'\. Valid recipes: \[.*'mnist_cnn'"),
    (["--model=mnist_mlp", "--batch_size=0"],
     r"Invalid value for `--batch_size`: expected a positive integer\. Received: --batch_size=0"),
    (["--model=mnist_mlp", "--epochs=-2"],
     r"Invalid value for `--epochs`: expected an integer >= 0\. Received: --epochs=-2"),
    (["--model=mnist_mlp", "--set=epochz=1"], r"Unknown config field 'epochz'"),
])
def test_bad_flags_fail_at_start_with_a_clear_message(argv, message, tmp_path):
  proc = subprocess.run(
      [sys.executable, str(REPO / "scripts" / "train.py"), f"--model_dir={tmp_path / 'run'}",
       f"--data_dir={tmp_path / 'empty'}", *argv],
      capture_output=True, text=True, timeout=120)
  assert proc.returncode != 0
  import re
  assert re.search(message, proc.stderr), proc.stderr[-2000:]
  assert not (tmp_path / "run").exists()  # Failed before touching the run directory.


def test_missing_data_fails_fast_from_the_script(tmp_path):
  proc = subprocess.run(
      [sys.executable, str(REPO / "scripts" / "train.py"), "--model=mnist_mlp",
       f"--model_dir={tmp_path / 'run'}", f"--data_dir={tmp_path / 'empty'}"],
      capture_output=True, text=True, timeout=60)
  assert proc.returncode != 0
  assert "Dataset 'mnist' is not prepared" in proc.stderr
  assert "--manual_dir=../shared/data/mnist" in proc.stderr


class _Probe(keras.callbacks.Callback):
  """Records the logits kernel at each epoch end (and the optimizer's EMA slot for it) and
  at the first training batch of the run."""

  def __init__(self):
    super().__init__()
    self.epoch_end_model = self.epoch_end_slot = self.first_batch = None

  def _kernel(self):
    return self.model.get_layer("logits").kernel

  def on_epoch_end(self, epoch, logs=None):
    kernel = self._kernel()
    opt = self.model.optimizer
    slot = opt._model_variables_moving_average[opt._get_variable_index(kernel)]
    self.epoch_end_model, self.epoch_end_slot = np.array(kernel), np.array(slot)

  def on_train_batch_begin(self, batch, logs=None):
    if self.first_batch is None:
      self.first_batch = np.array(self._kernel())


def test_ema_weights_are_checkpointed_and_a_resume_trains_on_from_the_raw_weights(
    mock_mnist, mock_manual_dir, tmp_path):
  config = recipes.mnist_mlp_tiny().replace(train_epochs=3, ema_momentum=0.9)
  kwargs = dict(data_dir=str(tmp_path / "tfds"), manual_dir=mock_manual_dir)
  model_dir = str(tmp_path / "run")
  before = _Probe()
  with pytest.raises(KeyboardInterrupt):
    train.train_and_evaluate(config, model_dir, extra_callbacks=[before, recipes.Interrupt(2)], **kwargs)
  # At an epoch end the model holds the average and the optimizer slot the raw weights.
  assert not np.allclose(before.epoch_end_model, before.epoch_end_slot)
  saved = keras.saving.load_model(os.path.join(model_dir, train.CHECKPOINT))
  np.testing.assert_allclose(saved.get_layer("logits").kernel, before.epoch_end_model)
  after = _Probe()
  train.train_and_evaluate(config, model_dir, extra_callbacks=[after], **kwargs)
  np.testing.assert_allclose(after.first_batch, before.epoch_end_slot)  # Raw, not the average.
  final = keras.saving.load_model(os.path.join(model_dir, train.CHECKPOINT))
  np.testing.assert_allclose(final.get_layer("logits").kernel, after.epoch_end_model)


def test_precision_and_strategy_flags_reach_the_run(train_script, mock_mnist, mock_manual_dir,
                                                    tmp_path):
  model_dir = tmp_path / "run"
  run_train_script(train_script, [
      "--model=mnist_cnn", f"--model_dir={model_dir}", "--epochs=1", "--batch_size=16",
      f"--data_dir={tmp_path / 'tfds'}", f"--manual_dir={mock_manual_dir}",
      "--mixed_precision=bfloat16", "--strategy=mirrored", "--set=eval_batch_size=16",
      "--set=model_kwargs.filters=(4,8)"])
  card = json.loads((model_dir / "run_card.json").read_text())
  assert card["dtype_policy"] == "mixed_bfloat16"
  assert card["strategy"] == "MirroredStrategy"
  metrics = json.loads((model_dir / "metrics.json").read_text())
  assert np.isfinite(metrics["loss"])
  saved = keras.saving.load_model(model_dir / train.CHECKPOINT)
  assert all(w.dtype == "float32" for w in saved.weights)
