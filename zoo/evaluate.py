"""Evaluates a run directory on a dataset split."""

from __future__ import annotations

import json
import os
import re
from typing import Optional

import keras

from zoo import data, provenance
from zoo.configs import TrainConfig
from zoo.train import CHECKPOINT


def load_run(model_dir: str) -> tuple[TrainConfig, keras.Model]:
  """Returns the config and the last checkpointed model of a run directory.

  Raises:
    FileNotFoundError: `model_dir` is not a run directory, or has no checkpoint yet.
  """
  config_path = os.path.join(model_dir, "config.json")
  if not os.path.exists(config_path):
    raise FileNotFoundError(
        f"Invalid value for `model_dir`: {model_dir!r} is not a run directory (no "
        "config.json). Expected the --model_dir of a scripts/train.py run.")
  checkpoint = os.path.join(model_dir, CHECKPOINT)
  if not os.path.exists(checkpoint):
    raise FileNotFoundError(
        f"Run {model_dir!r} has no checkpoint yet ({CHECKPOINT}): it has not finished an "
        "epoch. Train it first (rerunning scripts/train.py resumes it).")
  with open(config_path) as f:
    config = TrainConfig.from_dict(json.load(f))
  return config, keras.saving.load_model(checkpoint)


def evaluate_run(model_dir: str, *, split: Optional[str] = None,
                 data_dir: Optional[str] = None, manual_dir: Optional[str] = None,
                 allow_download: bool = False) -> dict:
  """Evaluates the run's last checkpoint on `split` (default: its `eval_split`).

  Writes `eval_<split>.json` into `model_dir` and returns the same dict.
  """
  config, model = load_run(model_dir)
  split = split or config.eval_split
  builder = data.prepare_builder(config.dataset, data_dir=data_dir, manual_dir=manual_dir,
                                 allow_download=allow_download)
  ds = data.make_classification_dataset(builder, split, batch_size=config.eval_batch_size,
                                        training=False)
  results = model.evaluate(ds, return_dict=True, verbose=0)
  metrics = {
      "model_dir": model_dir, "dataset": config.dataset, "split": split,
      "num_examples": data.num_examples(builder, split),
      "accuracy": float(results["accuracy"]), "loss": float(results["loss"]),
      "git_commit": provenance.git_commit(),
  }
  safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", split)
  provenance.write_json(os.path.join(model_dir, f"eval_{safe}.json"), metrics)
  return metrics
