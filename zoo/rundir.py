"""The run-directory layout, in one place. Every module that reads or writes a run uses this.

  <model_dir>/
    config.json               the exact config (read back by evaluation and export)
    run_card.json             config + data paths + policy + strategy + versions + git commit
    tensorboard/              scalars, images (written by the task's callbacks)
    backup/                   `keras.callbacks.BackupAndRestore` state: a rerun resumes here
    checkpoints/model.keras   the model after the last completed epoch
    metrics.json              final metrics on `config.eval_split`, with provenance
    eval_<split>.json         written by `scripts/evaluate.py`
"""

from __future__ import annotations

import json
import os
import re

import keras

# Registers the zoo's Keras classes (the GAN model, custom layers, the learning-rate
# schedules a checkpoint's optimizer names) for `load_run`.
from zoo import models, schedules  # noqa: F401  pylint: disable=unused-import
from zoo.configs import TrainConfig

from zoo import errors, runtime

CONFIG = "config.json"
RUN_CARD = "run_card.json"
METRICS = "metrics.json"
TENSORBOARD = "tensorboard"
BACKUP = "backup"
CHECKPOINT = os.path.join("checkpoints", "model.keras")


def path(model_dir: str, name: str) -> str:
  """`model_dir/name` for one of the names above."""
  return os.path.join(model_dir, name)


def eval_path(model_dir: str, split: str) -> str:
  """Where `scripts/evaluate.py` writes its metrics for `split` (slicing made file-safe)."""
  return os.path.join(model_dir, f"eval_{re.sub(r'[^A-Za-z0-9_.-]+', '_', split)}.json")


def completed_epochs(model_dir: str) -> int:
  """Epochs of the run in `model_dir` that finished and were backed up (0 for a new run)."""
  metadata = os.path.join(model_dir, BACKUP, "training_metadata.json")
  if not os.path.exists(metadata):
    return 0
  with open(metadata) as f:
    return int(json.load(f)["epoch"])  # Written by keras.callbacks.BackupAndRestore.


def read_json(model_dir: str, name: str) -> dict:
  """A run's JSON file (`config.json`, `run_card.json`, ...) as a dict, or one line naming
  it if it is damaged (`zoo.runtime.read_json_object`)."""
  return runtime.read_json_object(os.path.join(model_dir, name), "run file")


def check_trained(model_dir: str) -> None:
  """Raises FileNotFoundError unless `model_dir` is a run with a checkpoint."""
  if not os.path.exists(os.path.join(model_dir, CONFIG)):
    raise errors.NotFoundError(
           f"Invalid value for `model_dir`: {model_dir!r} is not a run directory (no "
           f"{CONFIG}). Expected the --model_dir of a scripts/train.py run.")
  if not os.path.exists(os.path.join(model_dir, CHECKPOINT)):
    raise errors.NotFoundError(
           f"Run {model_dir!r} has no checkpoint yet ({CHECKPOINT}): it has not finished an "
           "epoch. Train it first (rerunning scripts/train.py resumes it).")


def load_run(model_dir: str) -> tuple[TrainConfig, keras.Model]:
  """Returns the config and the last checkpointed model of a run directory.

  Raises:
    FileNotFoundError: `model_dir` is not a run directory, or has no checkpoint yet.
  """
  check_trained(model_dir)
  config = TrainConfig.from_dict(read_json(model_dir, CONFIG))
  if os.path.exists(path(model_dir, RUN_CARD)):
    card = read_json(model_dir, RUN_CARD)
    config = with_derived(config, card.get("resolved", {}) if isinstance(card, dict) else {})
  return config, keras.saving.load_model(path(model_dir, CHECKPOINT))


def with_derived(config: TrainConfig, derived: dict) -> TrainConfig:
  """`config` with the knobs its run derived from the data (`zoo.tasks.base.Task.
  data_derived`, the run card's `resolved`) in place of the ones it left to the data."""
  if not derived:
    return config
  return config.replace(model_kwargs={**config.model_kwargs, **derived.get("model_kwargs", {})})
