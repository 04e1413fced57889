"""Evaluates a run directory or an exported model on a dataset split, with its task's
metrics: the same evaluator for the Keras model and for every exported file."""

from __future__ import annotations

from typing import Optional

from zoo import data, loading, provenance, rundir, tasks
from zoo.configs import TrainConfig


def evaluate_run(model_dir: str, *, split: Optional[str] = None,
                 data_dir: Optional[str] = None, manual_dir: Optional[str] = None,
                 allow_download: bool = False) -> dict:
  """Evaluates the run's last checkpoint on `split` (default: its `eval_split`) with its
  task's metrics (classification: accuracy, loss; generation: FID, coverage, ...).

  Writes `eval_<split>.json` into `model_dir` and returns the same dict.
  """
  config, model = rundir.load_run(model_dir)
  split = split or config.eval_split
  builder = data.builder_for(
      config, data_dir=data_dir, manual_dir=manual_dir, allow_download=allow_download,
      prepared_dir=rundir.read_json(model_dir, rundir.RUN_CARD).get("dataset_dir"))
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
  front = loading.load(path)
  config = TrainConfig.from_dict(front.card["training"]["config"])
  task = tasks.for_card(front.card)
  split = split or config.eval_split
  builder = data.builder_for(config, data_dir=data_dir, manual_dir=manual_dir,
                             allow_download=allow_download)
  return {"model": front.source, "task": task.name, "dataset": config.dataset,
          "split": split, **task.evaluate_front(front, config, builder, split),
          "git_commit": provenance.git_commit()}
