"""Evaluates a run directory on a dataset split, with its task's metrics."""

from __future__ import annotations

from typing import Optional

import keras

from zoo import data, models, provenance, rundir, tasks  # noqa: F401  (models: Keras classes)
from zoo.configs import TrainConfig


def load_run(model_dir: str) -> tuple[TrainConfig, keras.Model]:
  """Returns the config and the last checkpointed model of a run directory.

  Raises:
    FileNotFoundError: `model_dir` is not a run directory, or has no checkpoint yet.
  """
  rundir.check_trained(model_dir)
  config = TrainConfig.from_dict(rundir.read_json(model_dir, rundir.CONFIG))
  return config, keras.saving.load_model(rundir.path(model_dir, rundir.CHECKPOINT))


def evaluate_run(model_dir: str, *, split: Optional[str] = None,
                 data_dir: Optional[str] = None, manual_dir: Optional[str] = None,
                 allow_download: bool = False) -> dict:
  """Evaluates the run's last checkpoint on `split` (default: its `eval_split`) with its
  task's metrics (classification: accuracy, loss; generation: FID, coverage, ...).

  Writes `eval_<split>.json` into `model_dir` and returns the same dict.
  """
  config, model = load_run(model_dir)
  split = split or config.eval_split
  builder = data.prepare_builder(config.dataset, data_dir=data_dir, manual_dir=manual_dir,
                                 allow_download=allow_download)
  metrics = {"model_dir": model_dir, "task": config.task, "dataset": config.dataset,
             "split": split,
             **tasks.get(config.task).evaluate(model, config, builder, split),
             "git_commit": provenance.git_commit()}
  provenance.write_json(rundir.eval_path(model_dir, split), metrics)
  return metrics


def evaluate_export(path: str, *, split: Optional[str] = None, data_dir: Optional[str] = None,
                    manual_dir: Optional[str] = None, allow_download: bool = False) -> dict:
  """Evaluates an exported model (anything `zoo.load` takes) with its task's metrics on
  `split` (default: the eval split of the run it was exported from). Writes nothing."""
  from zoo import predictor as zoo_predictor
  predictor = zoo_predictor.load(path)
  config = TrainConfig.from_dict(predictor.card["training"]["config"])
  task = tasks.for_card(predictor.card)
  split = split or config.eval_split
  builder = data.prepare_builder(config.dataset, data_dir=data_dir, manual_dir=manual_dir,
                                 allow_download=allow_download)
  return {"model": predictor.source, "task": task.name, "dataset": config.dataset,
          "split": split, **task.evaluate_predictor(predictor, config, builder, split),
          "git_commit": provenance.git_commit()}
