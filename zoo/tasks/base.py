"""What a task supplies, and the evaluation and export path written once for every task.

A task (`zoo/tasks/<name>.py`) gives:
  * training: its datasets, how its model is compiled, its callbacks;
  * its exported functions (`signatures`, `tflite_signature`) and the card fields its
    front needs (`card_fields`);
  * its front (`front`, a `zoo.runtime.Predictor` subclass apps get from `zoo.load`);
  * one evaluator (`evaluator`), which takes a predict function (`predict_fn(front)`) and
    returns named metrics, the shape of big_vision's `evaluators/common.py`.

The base does the rest, the same way for every task: the Keras model is evaluated through
the very functions the SavedModel will hold (a `FunctionBackend` behind the task's
front), and an export writes the SavedModel, labels, TFLite variants and card, then runs
that one evaluator on the Keras model and on every file it wrote: parity is "the same
evaluator on each file" (`Evaluator.compare`).
"""

from __future__ import annotations

import copy
import dataclasses
import os
import weakref
from typing import Any, Callable, Optional, Sequence

import keras
import tensorflow as tf

from zoo import artifacts, data, errors, runtime


@dataclasses.dataclass
class Signature:
  """One exported function.

  Attributes:
    fn: `fn(**named tensors) -> dict of named tensors`.
    input_signature: its named `tf.TensorSpec`s, in argument order.
    inputs, outputs: what the model card says of them (`{name: {dtype, shape, ...}}`).
  """

  fn: Callable
  input_signature: list
  inputs: dict
  outputs: dict


@dataclasses.dataclass
class Evaluation:
  """An evaluator's pass over one model: its raw predictions and its metrics."""

  predictions: Any
  metrics: dict


class Evaluator:
  """A task's metrics of a predict function; knows nothing of Keras, files or training.

  `evaluator(predict)` returns the metrics; `evaluate(predict)` also keeps the
  predictions, and `compare(reference, candidate)` turns two evaluations into the parity
  figures of the candidate (an exported file) against the reference (the Keras model).
  """

  def predictions(self, predict: Callable) -> Any:
    raise NotImplementedError

  def metrics(self, predictions) -> dict:
    raise NotImplementedError

  def compare(self, reference: Evaluation, candidate: Evaluation) -> dict:
    raise NotImplementedError

  def evaluate(self, predict: Callable) -> Evaluation:
    predictions = self.predictions(predict)
    return Evaluation(predictions, self.metrics(predictions))

  def __call__(self, predict: Callable) -> dict:
    return self.evaluate(predict).metrics


class Task:
  """The interface every task implements (see the module docstring).

  Attributes:
    name: the task's name (`TrainConfig.task`, the model card's `task`).
    task_kwargs: the task's knobs and their defaults (`TrainConfig.task_kwargs` overrides
      them; `--set=task_kwargs.<knob>=value` on the command line).
    tflite_variants: the TFLite variants `scripts/export.py` writes by default.
    front: the `zoo.runtime.Predictor` subclass apps use for its exported models.
    count_key: the metric that counts what was evaluated (examples, samples, images).
    writes_labels: write `labels.txt` (one class name per line) beside the SavedModel.
    export_options: the task's export options and their defaults (`export_run`'s
      `**task_options`; unknown ones fail).
    class_layers: `{layer name: axis}` of the model's layers that hold one slice per class
      along that axis: fine-tuning carries them class by class, by name, and keeps them
      training while the loaded layers are frozen (`zoo.finetune`).
  """

  name = ""
  task_kwargs: dict = {}
  tflite_variants: Sequence[str] = ()
  front: type = runtime.Predictor
  count_key = "num_examples"
  writes_labels = False
  export_options: dict = {}
  class_layers: dict = {}

  def __init__(self):
    self._keras_fronts = weakref.WeakKeyDictionary()

  def backbone_layers_to_level(self, model, level: int) -> list:
    """The layers of `model`'s backbone up to its stride-`2**level` map
    (`TrainConfig.freeze_backbone_to_level`); tasks whose models read a backbone's levels
    say which."""
    raise errors.InvalidValueError(
        f"Invalid value for `freeze_backbone_to_level`: task {self.name!r} does not read a "
        "backbone by levels (the detection task does); set it to 0. Received: "
        f"freeze_backbone_to_level={level}")

  def knobs(self, config) -> dict:
    """The task's knobs: defaults overridden by `config.task_kwargs` (unknown ones fail)."""
    unknown = sorted(set(config.task_kwargs) - set(self.task_kwargs))
    if unknown:
      raise errors.InvalidValueError(
          f"Invalid value for `task_kwargs`: unknown knob(s) {unknown} for task "
          f"{self.name!r}; valid knobs: {sorted(self.task_kwargs)}.")
    return {**self.task_kwargs, **config.task_kwargs}

  # --- Training -------------------------------------------------------------------------

  def check_data(self, config, info) -> None:
    """Raises `zoo.errors.InvalidValueError` when the dataset (`zoo.data.DatasetInfo`) cannot
    train this task, before anything is built (e.g. one class for a classifier)."""

  def data_derived(self, config, builder) -> dict:
    """Knobs this run derives from its training data when the config leaves them to it
    (e.g. a detector's `image_size="auto"`): `{"model_kwargs": {...}, "why": {...}}`, or
    {} for none. The run card records it (`resolved`) and `zoo.rundir.load_run` applies it,
    so export and evaluation build what was trained."""
    return {}

  def datasets(self, builder, config, epochs: Sequence[int] = (0,)
               ) -> tuple[tf.data.Dataset, Optional[tf.data.Dataset]]:
    """`(train, validation)` datasets for `fit()`; validation None: no validation pass.

    `train` holds the training `epochs`, each a function of `(config.seed, epoch)` alone
    (`zoo.data.tfds_input.epoch_seed`): a run resumed at epoch `e` gets epochs `e..n-1` and
    must see what an uninterrupted run sees there. Make it with `zoo.data.
    concatenate_epochs`: for a plain sequence of epochs it holds them one after another;
    `zoo.train` passes a `zoo.data.EpochRange`, and then each iterator holds the current
    epoch only."""
    raise NotImplementedError

  def compile(self, model: keras.Model, config,
              make_optimizer: Callable[[], keras.optimizers.Optimizer],
              jit_compile: bool, steps_per_execution: int = 1) -> None:
    """Compiles `model` (inside the strategy scope); losses live in the model.
    `jit_compile` and `steps_per_execution` go to `model.compile` as they are (the strategy
    has already decided them, `zoo.distribute`)."""
    raise NotImplementedError

  def callbacks(self, config, *, builder, log_dir: str, info, train_ds, validation_ds) -> list:
    """The task's own callbacks (TensorBoard images, quality metrics ...), placed before
    the TensorBoard callback so that the logs they add are written."""
    return []

  # --- What differs in evaluation and export --------------------------------------------

  def card_fields(self, model: keras.Model, config, info) -> dict:
    """What the task's front reads from the model card (shapes, labels, ...)."""
    raise NotImplementedError

  def signatures(self, model: keras.Model, config, info) -> dict[str, Signature]:
    """The SavedModel's signatures (`serving_default` first), by name."""
    raise NotImplementedError

  def tflite_signature(self, model: keras.Model, config, info) -> Signature:
    """The one function every TFLite file is converted from."""
    raise NotImplementedError

  def evaluator(self, config, builder, split: str, **options) -> Evaluator:
    """The task's evaluator on `split` (options: the task's export options)."""
    raise NotImplementedError

  def predict_fn(self, front) -> Callable:
    """The predict function of a front that the task's evaluator takes."""
    raise NotImplementedError

  def example_input(self, config, builder) -> tuple:
    """The arguments of `predict_fn(front)` for one input (benchmarks time it)."""
    raise NotImplementedError

  def checks(self, card: dict, **options) -> list[dict]:
    """The export's pass/fail checks from the card's `metrics` and `parity`, each
    `{check, file, value, passed}`: `file` is the card's key of the file it judges (a
    failing file is left out of the export unless required); a check without `file`
    judges the whole export, and its failure fails it."""
    raise NotImplementedError

  def self_checks(self, front) -> list[dict]:
    """Checks of one exported SavedModel's signatures against each other (default none),
    each with `file: "saved_model"`."""
    return []

  def card_metrics(self, metrics: dict) -> dict:
    """The Keras model's metrics as the card records them (default: as they are)."""
    return metrics

  def calibration_images(self, config, builder, **options):
    """uint8 training inputs calibrating the int8 TFLite variant (tasks that write one)."""
    raise errors.InvalidValueError(f"Task {self.name!r} writes no int8 TFLite variant.")

  def int8_scope(self, model: keras.Model, config, info) -> Optional[str]:
    """The name scope the int8 TFLite variant quantizes (`artifacts.convert_tflite`); None
    (the default): the whole graph."""
    return None

  def headline(self, metrics: dict) -> str:
    """One line summing up `metrics` for the scripts' output."""
    raise NotImplementedError

  def format_value(self, key: str, value) -> str:
    """One metric or parity figure as the scripts print it."""
    if isinstance(value, str) or isinstance(value, bool):
      return str(value)
    if value is None:  # Not measured (a generator's FID without a feature model).
      return "-"
    if isinstance(value, float) and abs(value) < 0.01:
      return f"{value:.2e}"
    return f"{value:.4g}"

  # --- Written once, for every task -----------------------------------------------------

  def write_saved_model(self, model: keras.Model, config, info, directory: str) -> dict:
    """Writes the SavedModel with the task's signatures; returns them by name."""
    signatures = self.signatures(model, config, info)
    artifacts.write_saved_model(directory, {name: (s.fn, s.input_signature)
                                            for name, s in signatures.items()})
    return signatures

  def keras_front(self, model: keras.Model, config, info):
    """The task's front over the Keras model's serving functions, traced once per model and
    config (a model evaluated again with other knobs, say NMS thresholds, is traced anew)."""
    cached = self._keras_fronts.get(model)
    if cached is None or cached[0] != config:
      functions = {name: tf.function(s.fn, input_signature=s.input_signature)
                   for name, s in self.signatures(model, config, info).items()}
      card = {"task": self.name, "name": config.recipe or config.model,
              **self.card_fields(model, config, info)}
      cached = self._keras_fronts[model] = (
          copy.deepcopy(config), self.front(runtime.FunctionBackend(functions), card))
    return cached[1]

  def evaluate(self, model: keras.Model, config, builder, split: str) -> dict:
    """The task's metrics of a Keras model on `split`, through its serving functions."""
    front = self.keras_front(model, config, data.dataset_info(builder))
    return self.evaluator(config, builder, split)(self.predict_fn(front))

  def evaluate_front(self, front, config, builder, split: str) -> dict:
    """The same metrics for an exported model, through its front."""
    return self.evaluator(config, builder, split)(self.predict_fn(front))

  def onnx_signature(self, model: keras.Model, config, info) -> Signature:
    """The function `model.onnx` is converted from: the SavedModel's `serving_default`, so
    the ONNX file takes and returns what the SavedModel does."""
    return self.signatures(model, config, info)["serving_default"]

  def export(self, model: keras.Model, config, builder, directory: str, card: dict, *,
             variants: Sequence[str], onnx: bool = True, parity_split: Optional[str] = None,
             **options) -> dict:
    """Writes the SavedModel, labels, TFLite files and `model.onnx` into `directory`;
    returns `card` completed with `files`, `metrics`, `parity` and `checks`.

    Args:
      variants: the TFLite variants to write.
      onnx: write `model.onnx` (tf2onnx, checked in ONNX Runtime).
      parity_split: the split every file is evaluated on (default: the eval split).
      **options: the task's export options (its evaluator's, checks' and calibration's).
    """
    options = self._export_options(options)
    info = data.dataset_info(builder)
    signatures = self.write_saved_model(model, config, info, directory)
    if self.writes_labels:
      with open(os.path.join(directory, "labels.txt"), "w") as f:
        f.write("\n".join(info.class_names) + "\n")
    files = {"saved_model": {"path": ".", "signatures": {
        name: {"inputs": s.inputs, "outputs": s.outputs} for name, s in signatures.items()}}}
    tflite = self.tflite_signature(model, config, info)
    calibration = (self.calibration_images(config, builder, **options)
                   if "int8" in variants else None)
    files.update(artifacts.write_tflite_variants(
        tflite.fn, tflite.input_signature, directory, variants, inputs=tflite.inputs,
        outputs=tflite.outputs, calibration_images=calibration,
        int8_scope=self.int8_scope(model, config, info)))
    if onnx:
      source = self.onnx_signature(model, config, info)
      files["onnx"] = artifacts.write_onnx(
          source.fn, source.input_signature, os.path.join(directory, runtime.ONNX_FILE),
          inputs=source.inputs, outputs=source.outputs)
    card.update({**self.card_fields(model, config, info), "files": files})
    artifacts.write_card(directory, card)  # Fronts read labels and shapes from it.

    split = parity_split or config.eval_split
    evaluator = self.evaluator(config, builder, split, **options)
    reference = evaluator.evaluate(self.predict_fn(self.keras_front(model, config, info)))
    card["metrics"] = {"split": split, **self.card_metrics(reference.metrics)}
    card["parity"] = self.parity(evaluator, reference, directory, card, list(files))
    card["checks"] = (self.checks(card, **options)
                      + self.self_checks(self.front(runtime.SavedModelBackend(directory),
                                                    card)))
    return card

  def _export_options(self, options: dict) -> dict:
    unknown = sorted(set(options) - set(self.export_options))
    if unknown:
      raise errors.InvalidValueError(
          f"Invalid value for export options: {unknown} are not options of task "
          f"{self.name!r}; valid options: {sorted(self.export_options)}.")
    return {**self.export_options, **options}

  def open_file(self, directory: str, key: str, card: dict):
    """The task's front over one file of an export (`key` as in the card's `files`),
    after checking the file against the card's contract."""
    entry = card["files"][key]
    if key == "saved_model":
      return self.front(runtime.SavedModelBackend(directory), card)
    path = os.path.join(directory, entry["path"])
    if key == "onnx":
      backend = runtime.ONNXBackend(path)
      artifacts.check_onnx_contract(backend, entry)
    else:
      backend = runtime.TFLiteBackend(path)
      artifacts.check_tflite_contract(backend, entry, key)
    return self.front(backend, card)

  def parity(self, evaluator: Evaluator, reference: Evaluation, directory: str, card: dict,
             keys: Sequence[str]) -> dict:
    """The evaluator run on each file `keys` of the export, compared with `reference`."""
    return {key: evaluator.compare(reference, evaluator.evaluate(
        self.predict_fn(self.open_file(directory, key, card)))) for key in keys}
