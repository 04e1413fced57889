"""The interface every task implements (see `zoo.tasks`)."""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import keras
import tensorflow as tf

from zoo import errors


class Task:
  """What a task supplies to the one training, evaluation, export and loading path.

  Attributes:
    name: the task's name (`TrainConfig.task`, the model card's `task`).
    task_kwargs: the task's knobs and their defaults (`TrainConfig.task_kwargs` overrides
      them; `--set=task_kwargs.<knob>=value` on the command line).
    tflite_variants: the TFLite variants `scripts/export.py` writes by default.
    predictor: the `zoo.predictor` front for its exported models.
  """

  name = ""
  task_kwargs: dict = {}
  tflite_variants: Sequence[str] = ()
  predictor: type = None

  def knobs(self, config) -> dict:
    """The task's knobs: defaults overridden by `config.task_kwargs` (unknown ones fail)."""
    unknown = sorted(set(config.task_kwargs) - set(self.task_kwargs))
    if unknown:
      raise errors.InvalidValueError(
          f"Invalid value for `task_kwargs`: unknown knob(s) {unknown} for task "
          f"{self.name!r}; valid knobs: {sorted(self.task_kwargs)}.")
    return {**self.task_kwargs, **config.task_kwargs}

  def datasets(self, builder, config) -> tuple[tf.data.Dataset, Optional[tf.data.Dataset]]:
    """`(train, validation)` datasets for `fit()`; validation None: no validation pass."""
    raise NotImplementedError

  def compile(self, model: keras.Model, config, make_optimizer: Callable[[], keras.optimizers.Optimizer],
              jit_compile: bool) -> None:
    """Compiles `model` (inside the strategy scope); losses live in the model."""
    raise NotImplementedError

  def callbacks(self, config, *, builder, log_dir: str, info, train_ds, validation_ds) -> list:
    """The task's own callbacks (TensorBoard images, quality metrics ...), placed before
    the TensorBoard callback so that the logs they add are written."""
    return []

  def evaluate(self, model: keras.Model, config, builder, split: str) -> dict:
    """The task's metrics of `model` on `split` (merged into metrics.json / eval_*.json)."""
    raise NotImplementedError

  def evaluate_predictor(self, predictor, config, builder, split: str) -> dict:
    """The same metrics for an exported model, through its `zoo.predictor` front."""
    raise NotImplementedError

  def headline(self, metrics: dict) -> str:
    """One line summing up `metrics` for the scripts' output."""
    raise NotImplementedError

  def export(self, model: keras.Model, config, builder, directory: str, card: dict, *,
             variants: Sequence[str], **options) -> dict:
    """Writes the SavedModel and TFLite files into `directory`; returns `card` completed
    with `files`, `metrics`, `parity` and `checks` (each check `{check, value, passed}`)."""
    raise NotImplementedError
