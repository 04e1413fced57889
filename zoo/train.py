"""Training entry point: `train_and_evaluate(config, model_dir)` runs a recipe end to end,
for every task (`zoo.tasks`): the task supplies the data, compilation, callbacks and
metrics; this module owns the loop around `fit()` (strategy, policy, resume, backups,
checkpoints, TensorBoard, the run card). The run-directory layout is in `zoo.rundir`.

`train_and_evaluate` is a sequence of named steps, each a function one can call alone:
`set_up_runtime` (determinism, strategy, precision), resume (`_resumed_config`,
`previous_run_card`), `with_data_derived` (knobs the data decides), `training_data` (the
epochs still to train and their datasets), `run_card`, `build_and_compile` (the model, its
fine-tuning source and what stays frozen), `run_callbacks` (in the order they must run) and
`fit_and_evaluate` (with Ctrl-C and lost workers translated).
Under `multi_worker_mirrored` the chief writes `model_dir` and every other worker a run
directory of its own, `model_dir/workers/<type>_<index>/` (see `zoo.distribute.worker_dir`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import sys
import time
from typing import Optional, Sequence

import keras
import tensorflow as tf

from zoo import callbacks as zoo_callbacks
from zoo import (data, distribute, errors, finetune, precision, provenance, registry, rundir,
                 schedules, tasks)
from zoo.configs import LEGACY_VALUES, TrainConfig

# The layout's names, for callers that knew them here.
CHECKPOINT, BACKUP, METRICS = rundir.CHECKPOINT, rundir.BACKUP, rundir.METRICS
completed_epochs = rundir.completed_epochs

log = logging.getLogger("zoo")


class TrainingInterrupted(KeyboardInterrupt):
  """Ctrl-C (or SIGINT) stopped training; completed epochs are saved and a rerun resumes.

  Its message is the one line to show the user (see `zoo.cli.run`).
  """


def warmup_epochs(config: TrainConfig) -> float:
  """The warmup actually used: `warmup_epochs`, capped at `max_warmup_fraction` of the run,
  so that a run shortened with `--epochs` still decays instead of warming up throughout."""
  return min(config.warmup_epochs, config.max_warmup_fraction * config.train_epochs)


def make_optimizer(config: TrainConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
  """The config's optimizer with its learning-rate schedule (steps derived from epochs);
  a fine-tuning run's rate drops by `unfrozen_learning_rate_scale` once its loaded layers
  are unfrozen (after `freeze_epochs`)."""
  lr = config.learning_rate
  if config.lr_schedule == "cosine":
    total = max(config.train_epochs * steps_per_epoch, 1)
    warmup = int(round(warmup_epochs(config) * steps_per_epoch))
    lr = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else config.learning_rate,
        decay_steps=max(total - warmup, 1),
        warmup_target=config.learning_rate if warmup else None,
        warmup_steps=warmup)
  if _freezes(config):
    lr = schedules.ScaledAfter(lr, config.freeze_epochs * steps_per_epoch,
                               config.unfrozen_learning_rate_scale)
  ema = {"use_ema": config.ema_momentum > 0, "ema_momentum": config.ema_momentum or 0.99}
  warm = config.ema_momentum > 0 and config.ema_warmup
  if config.optimizer == "adam":
    adam = schedules.AdamEMAWarmup if warm else keras.optimizers.Adam
    return adam(lr, beta_1=config.beta_1, **ema)
  if config.optimizer == "adamw":
    adamw = schedules.AdamWEMAWarmup if warm else keras.optimizers.AdamW
    return adamw(lr, beta_1=config.beta_1, weight_decay=config.weight_decay, **ema)
  sgd = schedules.SGDEMAWarmup if warm else keras.optimizers.SGD
  return sgd(lr, momentum=0.9, nesterov=True, weight_decay=config.weight_decay or None, **ema)


def _freezes(config: TrainConfig) -> bool:
  return config.freeze_epochs > 0 and config.init_from != finetune.NONE


def _freeze_plan(model: keras.Model, config: TrainConfig, task, init: Optional[dict],
                 resuming: bool) -> tuple[list, list]:
  """`finetune.freeze_plan` for this run: what its run card says it froze when resuming (a
  run started before class layers were kept training froze nothing when every layer
  loaded, and resumes so)."""
  level = config.freeze_backbone_to_level
  if not init or config.init_from == finetune.NONE or not (_freezes(config) or level):
    return [], []
  if resuming and not init.get("freeze_epochs", config.freeze_epochs) and not level:
    return [], []
  return finetune.freeze_plan(
      model, init["loaded"], task.class_layers,
      freeze_epochs=config.freeze_epochs if _freezes(config) else 0,
      throughout=task.backbone_layers_to_level(model, level) if level else ())


# Fields that change how training runs, not the weights it computes: a run may be resumed
# with other values (a run started before `mnist_cnn` ran 32 steps per call resumes).
_SAME_WEIGHTS_FIELDS = ("steps_per_execution",)


def _resumed_config(model_dir: str, config: TrainConfig) -> TrainConfig:
  """`config`, checked against the run `model_dir` holds (a model_dir holds one run:
  resuming it with another config would mix two runs). Fields its config.json predates take
  the values that run ran with (`zoo.configs.LEGACY_VALUES`), so it resumes as it ran."""
  path = rundir.path(model_dir, rundir.CONFIG)
  if not os.path.exists(path):
    return config
  stored = rundir.read_json(model_dir, rundir.CONFIG)
  config = config.replace(**{k: v for k, v in LEGACY_VALUES.items() if k not in stored})
  # Through the dataclass: other fields added since the run started compare at their defaults.
  old = json.loads(TrainConfig.from_dict(stored).to_json())
  new = json.loads(config.to_json())
  diff = sorted(k for k in set(old) | set(new)
                if old.get(k) != new.get(k) and k not in _SAME_WEIGHTS_FIELDS)
  if diff:
    raise errors.InvalidValueError(
        f"Invalid value for `model_dir`: {model_dir!r} holds a run with a different config "
        f"(fields {diff} differ). Rerun with the same flags to resume it, or pick a new "
        "--model_dir.")
  return config


def _op_determinism_enabled() -> Optional[bool]:
  """TensorFlow's own word on whether op determinism is on (None if it cannot say)."""
  try:
    from tensorflow.python.framework import config as tf_config  # No public getter.
    return bool(tf_config.is_op_determinism_enabled())
  except (ImportError, AttributeError):
    return None


def epochs_to_train(config: TrainConfig, steps_per_epoch: int) -> int:
  """`train_epochs`, or more when they would give fewer than `min_train_steps` optimizer
  steps: a recipe made for 60,000 images still trains enough on a folder of 400."""
  if config.min_train_steps <= 0:
    return config.train_epochs
  return max(config.train_epochs, math.ceil(config.min_train_steps / steps_per_epoch))


def _datasets(task, builder, config: TrainConfig, epochs) -> tuple:
  """The task's `(train, validation)` datasets for `epochs`, sharded for the strategy."""
  return tuple(distribute.shard_inputs(ds) if ds is not None else None
               for ds in task.datasets(builder, config, epochs))


def _steps_per_epoch(ds: tf.data.Dataset) -> int:
  """Batches in `ds`, which holds one epoch (`zoo.data.EpochRange`)."""
  n = int(ds.cardinality())
  if n < 0:  # Unknown (e.g. a filtered split): count once.
    n = sum(1 for _ in ds)
  return n


# --- The steps of a run, in the order train_and_evaluate takes them -----------------------


@dataclasses.dataclass(frozen=True)
class Runtime:
  """Where and how a run computes, decided once before anything is built: the
  `tf.distribute` strategy, the dtype policy, and what the strategy allows of the config's
  XLA and steps-per-call."""
  strategy: tf.distribute.Strategy
  policy: str
  jit_compile: bool
  steps_per_execution: int


def set_up_runtime(config: TrainConfig, *, tpu: Optional[str] = None,
                   worker_start_timeout_seconds: float = 300.0) -> Runtime:
  """Op determinism (if asked), then the strategy, then the precision policy."""
  if config.deterministic:
    # Process-wide and cannot be undone: every op then picks a deterministic kernel
    # (or fails if it has none), so the same command gives bit-identical weights.
    tf.config.experimental.enable_op_determinism()
  # Strategy first: a TPU's devices are visible (to `auto` precision) only once connected.
  strategy = distribute.get_strategy(config.strategy, tpu=tpu,
                                     worker_start_timeout_seconds=worker_start_timeout_seconds)
  policy = precision.set_policy(config.mixed_precision)
  distribute.check_global_batch(config.batch_size, strategy)
  distribute.check_global_batch(config.eval_batch_size, strategy, name="eval_batch_size")
  # A config asks for XLA; the strategy says whether it can have it (see zoo.distribute).
  return Runtime(strategy, policy, config.jit_compile and distribute.xla_supported(strategy),
                 distribute.steps_per_execution(strategy, config.steps_per_execution))


def previous_run_card(model_dir: str, done: int) -> dict:
  """The run card of the run being resumed (empty for a new run)."""
  if done > 0 and os.path.exists(rundir.path(model_dir, rundir.RUN_CARD)):
    return rundir.read_json(model_dir, rundir.RUN_CARD)
  return {}


def with_data_derived(config: TrainConfig, task, builder, previous: dict, resuming: bool
                      ) -> tuple[TrainConfig, dict]:
  """`config` with the knobs the recipe leaves to the data (a detector's
  `image_size="auto"`), and what was derived; a resumed run takes what its run card
  recorded, so it builds the network its checkpoint holds."""
  derived = previous["resolved"] if "resolved" in previous else task.data_derived(config, builder)
  if derived and not resuming:
    log.info("Derived from the training data: %s (%s).", derived["model_kwargs"],
             ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                       for k, v in derived["why"].items() if k != "rule"))
  return rundir.with_derived(config, derived), derived


@dataclasses.dataclass(frozen=True)
class TrainingData:
  """The epochs still to train and their datasets; `config.train_epochs` with the
  `min_train_steps` floor applied."""
  config: TrainConfig
  epochs: data.EpochRange
  train_ds: tf.data.Dataset
  eval_ds: Optional[tf.data.Dataset]
  steps_per_epoch: int


def training_data(task, builder, config: TrainConfig, done: int) -> TrainingData:
  """The epochs still to train, each a function of (seed, epoch) alone: a resumed run trains
  on the batches the uninterrupted run trains on (a complete run whose final evaluation was
  cut short gets its last epoch, which fit() then skips). Each fit() epoch reads a new
  iterator of the train dataset, which holds that epoch alone (the one `epochs.current`
  names, set by `zoo.callbacks.CurrentEpoch`)."""
  epochs = data.EpochRange(min(done, config.train_epochs - 1), config.train_epochs)
  train_ds, eval_ds = _datasets(task, builder, config, epochs)
  steps_per_epoch = _steps_per_epoch(train_ds)
  if steps_per_epoch == 0:
    raise errors.InvalidValueError(
        f"Invalid value for `batch_size`: split {config.train_split!r} has fewer "
        f"examples than one batch. Received: batch_size={config.batch_size}")
  total_epochs = epochs_to_train(config, steps_per_epoch)
  if total_epochs != config.train_epochs:
    if not done:
      log.info("Training %d epochs, not train_epochs=%d: %d steps an epoch, and the recipe "
               "trains at least min_train_steps=%d (--set=min_train_steps=0 trains %d).",
               total_epochs, config.train_epochs, steps_per_epoch, config.min_train_steps,
               config.train_epochs)
    config = config.replace(train_epochs=total_epochs)
    epochs = data.EpochRange(min(done, total_epochs - 1), total_epochs)
    train_ds, eval_ds = _datasets(task, builder, config, epochs)
  return TrainingData(config, epochs, train_ds, eval_ds, steps_per_epoch)


def run_card(recipe_config: TrainConfig, plan: TrainingData, runtime: Runtime, builder,
             info, manual_dir: Optional[str], derived: dict) -> dict:
  """What the run card says of a run before it trains (`init_from` is added once the
  model is built)."""
  return {
      "config": recipe_config.to_dict(),
      "train_epochs": plan.config.train_epochs,  # With the min_train_steps floor applied.
      # Where the data was actually read from (TFDS's default when --data_dir was not given).
      "data_dir": os.fspath(builder.data_dir_root), "dataset_dir": os.fspath(builder.data_dir),
      "manual_dir": manual_dir,
      "dataset": {"name": info.name, "num_examples": info.num_examples,
                  "class_names": list(info.class_names)},
      "dtype_policy": runtime.policy, "strategy": type(runtime.strategy).__name__,
      "num_replicas": runtime.strategy.num_replicas_in_sync,
      "steps_per_epoch": plan.steps_per_epoch,
      "warmup_epochs": warmup_epochs(plan.config), "jit_compile": runtime.jit_compile,
      "steps_per_execution": runtime.steps_per_execution,
      "op_determinism": _op_determinism_enabled(),
      **({"resolved": derived} if derived else {}),
      **provenance.describe(),
  }


@dataclasses.dataclass(frozen=True)
class FineTuning:
  """What a run took from its source and keeps frozen: `init` (the run card's `init_from`,
  None from scratch), the layers frozen for `freeze_epochs` and those frozen throughout."""
  init: Optional[dict]
  frozen: list
  throughout: list

  def card(self, config: TrainConfig) -> dict:
    """The run card's `init_from`: the source's report and what stays frozen how long."""
    return {**self.init, "freeze_epochs": config.freeze_epochs if self.frozen else 0,
            "frozen_throughout": [layer.name for layer in self.throughout]}


def build_and_compile(config: TrainConfig, task, info, runtime: Runtime, steps_per_epoch: int,
                      previous: dict, resuming: bool) -> tuple[keras.Model, FineTuning]:
  """The model in the strategy's scope, initialized from its source (a new run reads the
  source now; a resumed one restores its own checkpoint later and needs only which layers
  came from the source, to freeze them again the same way), frozen and compiled."""
  source = (finetune.resolve(config.init_from, backbone=registry.backbone_of(config))
            if not resuming else None)
  with runtime.strategy.scope():
    model = registry.build_model(config, input_shape=info.image_shape,
                                 num_classes=info.num_classes)
    init = (finetune.initialize(model, source, info.image_shape,
                                class_names=info.class_names, class_layers=task.class_layers)
            if source else previous.get("init_from"))
    frozen, throughout = _freeze_plan(model, config, task, init, resuming)
    for layer in throughout:  # Frozen (BatchNorm: inference mode) from the first step.
      layer.trainable = False
    task.compile(model, config, lambda: make_optimizer(config, steps_per_epoch),
                 runtime.jit_compile, steps_per_execution=runtime.steps_per_execution)
    if frozen:
      if getattr(model, "optimizer", None) is None:
        raise errors.InvalidValueError(
            f"Invalid value for `freeze_epochs`: task {config.task!r} trains several "
            "networks with their own optimizers; set freeze_epochs=0 (every loaded layer "
            f"trains from the start). Received: freeze_epochs={config.freeze_epochs}")
      # Built now, on every variable that will train: the frozen epochs' train step passes
      # only the new layers' variables, and Keras refuses variables an optimizer was not
      # built with when the loaded layers are unfrozen.
      model.optimizer.build(model.trainable_variables)
  return model, FineTuning(init, frozen, throughout)


def run_callbacks(config: TrainConfig, task, model_dir: str, builder, info,
                  plan: TrainingData, tuning: FineTuning, resuming: bool,
                  extra_callbacks: Sequence[keras.callbacks.Callback] = ()) -> list:
  """The run's Keras callbacks, in the order they must run."""
  log_dir = rundir.path(model_dir, rundir.TENSORBOARD)
  os.makedirs(os.path.dirname(rundir.path(model_dir, rundir.CHECKPOINT)), exist_ok=True)
  return [
      # First: it raises on a NaN loss before any other callback can save that epoch.
      zoo_callbacks.StopOnNonFiniteLoss(where=f"{model_dir!r}"),
      # Before the savers: checkpoints and backups then hold the averaged weights.
      *([zoo_callbacks.ResumableSwapEMAWeights(resuming)] if config.ema_momentum else []),
      zoo_callbacks.CurrentEpoch(plan.epochs.current),
      *([finetune.FreezeLoaded(tuning.frozen, tuning.throughout, config.freeze_epochs)]
        if tuning.frozen else []),
      zoo_callbacks.EpochSeeds(config.seed),
      keras.callbacks.BackupAndRestore(rundir.path(model_dir, rundir.BACKUP),
                                       double_checkpoint=True, delete_checkpoint=False),
      keras.callbacks.ModelCheckpoint(rundir.path(model_dir, rundir.CHECKPOINT)),
      # Before TensorBoard: the logs they add (a GAN's FID) are then written with the rest.
      *task.callbacks(config, builder=builder, log_dir=log_dir, info=info,
                      train_ds=plan.train_ds, validation_ds=plan.eval_ds),
      zoo_callbacks.EpochTensorBoard(log_dir),
      *extra_callbacks,
  ]


def fit_and_evaluate(model: keras.Model, config: TrainConfig, task, builder,
                     plan: TrainingData, callbacks: list, *, model_dir: str, strategy,
                     verbose="auto") -> tuple[int, float, dict]:
  """`fit()` over the epochs still to train, then the task's final evaluation: `(epochs run,
  fit seconds, metrics)`. Ctrl-C becomes `TrainingInterrupted` (where it stopped, how to
  resume), a lost peer of a multi-worker run `zoo.distribute.WorkerLostError`."""
  if verbose == "auto":
    # A live progress bar on a terminal; one line per epoch in logs and pipes.
    verbose = 1 if sys.stdout.isatty() else 2
  start = time.perf_counter()
  try:
    # shuffle=False: the pipeline shuffles (seeded); Keras would ignore True and warn.
    # steps_per_epoch=None: fit() then makes a new iterator of train_ds for every epoch.
    history = model.fit(plan.train_ds, epochs=config.train_epochs, steps_per_epoch=None,
                        validation_data=plan.eval_ds, callbacks=callbacks, verbose=verbose,
                        shuffle=False)
    fit_seconds = time.perf_counter() - start
    results = task.evaluate(model, config, builder, config.eval_split)
  except KeyboardInterrupt as e:
    done = rundir.completed_epochs(model_dir)
    raise TrainingInterrupted(
        f"Stopped at epoch {min(done + 1, config.train_epochs)}/{config.train_epochs} "
        f"({done} completed and saved in {model_dir}); rerun the same command to resume."
    ) from e
  except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError) as e:
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
      raise
    raise distribute.lost_worker_error(e, model_dir) from e
  return len(history.epoch), fit_seconds, results


# --- The run ----------------------------------------------------------------------------


def train_and_evaluate(config: TrainConfig, model_dir: str, *,
                       data_dir: Optional[str] = None, manual_dir: Optional[str] = None,
                       allow_download: bool = False, tpu: Optional[str] = None,
                       worker_start_timeout_seconds: float = 300.0,
                       extra_callbacks: Sequence[keras.callbacks.Callback] = (),
                       verbose="auto") -> dict:
  """Trains `config` into `model_dir`, resuming if it holds an interrupted run.

  Args:
    config: the recipe (see `zoo.registry.get_config`), already overridden.
    model_dir: the run directory (created if missing).
    data_dir: TFDS data directory.
    manual_dir: folder with the dataset's original files (see `zoo.data.prepare_builder`).
    allow_download: let TFDS download a dataset that is neither prepared nor provided.
    tpu: TPU address, for `strategy=tpu`.
    worker_start_timeout_seconds: `multi_worker_mirrored`: how long to wait for every
      worker in `TF_CONFIG` to start (see `zoo.distribute.get_strategy`).
    extra_callbacks: more Keras callbacks (benchmarks use `zoo.callbacks.EpochTimer`).
    verbose: `fit()`'s verbosity; `auto`: a progress bar when stdout is a terminal, one
      line per epoch otherwise.

  Returns:
    The final metrics written to `metrics.json`. A run that is already complete is not
    trained or evaluated again: its `metrics.json` is returned as it is.

  Raises:
    ValueError: an invalid config field, or a model_dir holding another config's run.
    zoo.data.DatasetNotAvailableError: the dataset is not available offline.
    zoo.callbacks.NonFiniteLossError: the loss became NaN/inf (checkpoints are kept).
    zoo.distribute.WorkerLostError: multi-worker training lost a peer (backups are kept).
    TrainingInterrupted: Ctrl-C; the message says where it stopped and how to resume.
  """
  config.validate()
  task = tasks.get(config.task)
  task.knobs(config)  # Unknown task knobs fail now, not after data preparation.
  registry.backbone_of(config)  # So does an unknown backbone.
  runtime = set_up_runtime(config, tpu=tpu,
                           worker_start_timeout_seconds=worker_start_timeout_seconds)
  model_dir = distribute.worker_dir(model_dir, runtime.strategy)
  recipe_config = config = _resumed_config(model_dir, config)  # As given: config.json keeps it.
  done = rundir.completed_epochs(model_dir)
  if done >= config.train_epochs and os.path.exists(rundir.path(model_dir, rundir.METRICS)):
    log.info("Run %s is complete (%d/%d epochs); its %s is kept. Pick a new --model_dir "
             "to train again.", model_dir, done, config.train_epochs, METRICS)
    return rundir.read_json(model_dir, rundir.METRICS)

  builder = data.builder_for(config, data_dir=data_dir, manual_dir=manual_dir,
                             allow_download=allow_download)
  info = data.dataset_info(builder)
  task.check_data(config, info)
  resuming = done > 0
  previous = previous_run_card(model_dir, done)
  config, derived = with_data_derived(config, task, builder, previous, resuming)
  # Seeded only now: preparing a dataset (the first run on a new --data_dir) draws random
  # numbers, and seeding before it gave that first run other initial weights than reruns.
  keras.utils.set_random_seed(config.seed)
  os.makedirs(model_dir, exist_ok=True)
  plan = training_data(task, builder, config, done)
  config = plan.config

  provenance.write_json(rundir.path(model_dir, rundir.CONFIG), recipe_config.to_dict())
  card = run_card(recipe_config, plan, runtime, builder, info, manual_dir, derived)
  model, tuning = build_and_compile(config, task, info, runtime, plan.steps_per_epoch,
                                    previous, resuming)
  if tuning.init:
    card["init_from"] = tuning.card(config)
  provenance.write_json(rundir.path(model_dir, rundir.RUN_CARD), card)
  callbacks = run_callbacks(config, task, model_dir, builder, info, plan, tuning, resuming,
                            extra_callbacks)
  if resuming:
    kept = "epoch 1 is" if done == 1 else f"epochs 1-{done} are"
    log.info("Resuming %s from epoch %d/%d (%s done and kept).", model_dir, done + 1,
             config.train_epochs, kept)
  epochs_run, fit_seconds, results = fit_and_evaluate(
      model, config, task, builder, plan, callbacks, model_dir=model_dir,
      strategy=runtime.strategy, verbose=verbose)
  metrics = {"model_dir": model_dir, "task": config.task, "split": config.eval_split,
             **results, "train_epochs": config.train_epochs,
             "epochs_run_this_invocation": epochs_run,
             "fit_seconds_this_invocation": round(fit_seconds, 2),
             "git_commit": card["git_commit"], "versions": card["versions"]}
  provenance.write_json(rundir.path(model_dir, rundir.METRICS), metrics)
  return metrics
