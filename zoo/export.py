"""Exports a run directory for apps: SavedModel (TF Serving layout) + TFLite, checked.

  exports/<name>/<version>/        (`saved_models/` holds the zoo's shipped models)
    saved_model.pb, variables/, assets/   SavedModel with the task's named signatures
    model_<variant>.tflite                TFLite files, built-in ops only
    labels.txt                            (classifiers) one label name per line
    model_card.json                       task, specs, metrics, parity, checks, files,
                                          config, provenance

One `export_run` serves every task: the task (`zoo.tasks`, from the run's config) writes
its signatures and TFLite files and measures their parity; this module loads the run,
makes the float32 twin, converts, and makes the version directory appear atomically: it
is written to a temporary directory beside the target and renamed into place only when
every check passed, so an interrupted or failed export leaves no version.
See `zoo/tasks/classification.py`, `zoo/tasks/generation.py` and `zoo/tasks/detection.py`
for each task's files.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Callable, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from zoo import data, errors, evaluate, provenance, registry, rundir, tasks
from zoo.predictor import read_card  # noqa: F401  (re-exported: export.read_card)

TFLITE_VARIANTS = ("float32", "float16", "dynamic_int8", "int8")


class ExportError(errors.ZooError, RuntimeError):
  """The export failed a check; nothing was written into the export directory."""


def float32_twin(build: Callable[[], keras.Model], trained: keras.Model) -> keras.Model:
  """`build()` run under the float32 policy, with `trained`'s weights copied in.

  Models trained under mixed_float16/bfloat16 carry float16/bfloat16 compute ops that
  TFLite's built-in kernels cannot run ("'tf.Conv2D' op is neither a custom op nor a flex
  op"); their variables are float32 already, so a float32 twin exports and converts
  cleanly, and every export is float32 (or uint8) in and float32 out whatever the policy.

  Args:
    build: builds the same architecture (e.g. `zoo.registry.build_model` with the run's
      config); called once, under float32.
    trained: the trained model.
  """
  previous = keras.mixed_precision.global_policy()
  keras.mixed_precision.set_global_policy("float32")
  try:
    model = build()
  finally:
    keras.mixed_precision.set_global_policy(previous)
  model.set_weights(trained.get_weights())
  return model


def write_saved_model(path: str, endpoints: dict) -> None:
  """Writes a SavedModel whose signatures are `endpoints`: `{name: (fn, input_signature)}`
  with named `tf.TensorSpec` inputs; each fn returns a dict of named outputs."""
  # No archive.track(model): the endpoints capture the variables already, and tracking
  # the model too stores every weight twice (keras-team/keras issue 23553, open).
  archive = keras.export.ExportArchive()
  for name, (fn, input_signature) in endpoints.items():
    archive.add_endpoint(name, fn, input_signature=input_signature)
  archive.write_out(path, verbose=False)


def write_tflite_source(fn: Callable, input_signature, path: str) -> None:
  """Writes the SavedModel every TFLite file is converted from: one `serving_default`
  signature, `fn` over `input_signature`. (Converting a Keras concrete function directly
  leaves READ_VARIABLE ops that int8 calibration cannot run; a SavedModel is frozen
  properly.)"""
  write_saved_model(path, {"serving_default": (fn, input_signature)})


def write_tflite_variants(fn: Callable, input_signature, directory: str,
                          variants: Sequence[str], *, inputs: dict, outputs: dict,
                          calibration_images=None) -> dict:
  """Converts `fn` over `input_signature` to each TFLite variant, writing
  `directory/model_<variant>.tflite`; returns the model card's `files` entries
  (`{variant: {path, bytes, inputs, outputs}}`, `inputs`/`outputs` as the card states them)."""
  files = {}
  if not variants:
    return files
  with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(directory))) as source:
    write_tflite_source(fn, input_signature, source)
    for variant in variants:
      path = f"model_{variant}.tflite"
      with open(os.path.join(directory, path), "wb") as f:
        f.write(convert_tflite(source, variant, calibration_images))
      files[variant] = {"path": path, "bytes": os.path.getsize(os.path.join(directory, path)),
                        "inputs": inputs, "outputs": outputs}
  return files


def convert_tflite(source_dir: str, variant: str, calibration_images=None) -> bytes:
  """Converts the SavedModel from `write_tflite_source` to one TFLite variant, built-in ops
  only: `float32`, `float16` (float16 weights), `dynamic_int8` (int8 weights, float
  activations) or `int8` (int8 weights and activations, calibrated on
  `calibration_images`, uint8 pixels [N, H, W, C]). Every variant keeps the source's
  uint8 pixel input and float32 probability output."""
  if variant not in TFLITE_VARIANTS:
    raise errors.InvalidValueError(
        f"Invalid value for `variant`: expected one of {list(TFLITE_VARIANTS)}. "
        f"Received: {variant!r}")
  converter = tf.lite.TFLiteConverter.from_saved_model(source_dir,
                                                       signature_keys=["serving_default"])
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
  if variant == "float16":
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
  elif variant == "dynamic_int8":
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
  elif variant == "int8":
    if calibration_images is None:
      raise errors.InvalidValueError("The int8 variant needs `calibration_images`.")
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([img[None]] for img in calibration_images)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8  # The pixels themselves, not a quantization.
    converter.inference_output_type = tf.float32
  return converter.convert()


def _next_version(model_root: str) -> int:
  if not os.path.isdir(model_root):
    return 1
  versions = [int(d) for d in os.listdir(model_root) if d.isdigit()]
  return max(versions, default=0) + 1


def export_run(model_dir: str, *, export_dir: str = "exports", name: Optional[str] = None,
               version: Optional[int] = None, overwrite: bool = False,
               variants: Optional[Sequence[str]] = None, data_dir: Optional[str] = None,
               manual_dir: Optional[str] = None, allow_download: bool = False,
               **task_options) -> str:
  """Exports the run in `model_dir` to `export_dir/<name>/<version>/`; returns that path.

  Args:
    model_dir: a run directory written by `zoo.train.train_and_evaluate`.
    export_dir: root of the TF Serving model directories. Users' exports go to `exports/`;
      `saved_models/` holds the models the zoo ships (tests pin their versions there).
    name: model name (default: the run's recipe name).
    version: integer version (default: the next free one).
    overwrite: replace an existing version.
    variants: TFLite variants to write (default: the task's `tflite_variants`).
    data_dir, manual_dir, allow_download: see `zoo.data.prepare_builder`.
    **task_options: the task's export options (e.g. classification's `parity_split`,
      `min_agreement`; see `Task.export` of `zoo/tasks/<task>.py`).

  Raises:
    FileExistsError: the version exists and `overwrite` is False.
    ExportError: a parity or size check failed (nothing is written).
  """
  config, trained = evaluate.load_run(model_dir)
  task = tasks.get(config.task)
  run_card = rundir.read_json(model_dir, rundir.RUN_CARD)
  name = name or config.recipe or config.model
  root = os.path.join(export_dir, name)
  version = version if version is not None else _next_version(root)
  if isinstance(version, bool) or not isinstance(version, int) or version < 1:
    raise errors.InvalidValueError(f"Invalid value for `version`: expected an integer >= 1. "
                                   f"Received: version={version!r}")
  variants = task.tflite_variants if variants is None else tuple(variants)
  unknown = sorted(set(variants) - set(task.tflite_variants))
  if unknown:
    raise errors.InvalidValueError(
        f"Invalid value for `variants`: {unknown} are not TFLite variants of "
        f"task {task.name!r}; expected some of {list(task.tflite_variants)}.")
  final = os.path.join(root, str(version))
  if os.path.exists(final) and not overwrite:
    raise errors.AlreadyExistsError(f"{final!r} exists; pass --overwrite to replace it, or omit "
                                    "--version to write the next free one.")

  builder = data.prepare_builder(config.dataset, data_dir=data_dir, manual_dir=manual_dir,
                                 allow_download=allow_download)
  info = data.dataset_info(builder)
  model = float32_twin(lambda: registry.build_model(config, input_shape=info.image_shape,
                                                    num_classes=info.num_classes), trained)
  os.makedirs(root, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=root)
  try:
    card = {
        "name": name, "version": version, "task": task.name,
        "training": {"model_dir": os.path.abspath(model_dir), "config": config.to_dict(),
                     "dtype_policy": run_card.get("dtype_policy"),
                     "git_commit": run_card.get("git_commit"),
                     "versions": run_card.get("versions")},
        **{k: v for k, v in provenance.describe().items() if k != "machine"},
    }
    card = task.export(model, config, builder, tmp, card, variants=variants, **task_options)
    write_card(tmp, card)
    failed = [c for c in card["checks"] if not c["passed"]]
    if failed:
      raise ExportError(f"Export of {model_dir!r} failed its checks: {failed}. "
                        "Nothing was written.")
    os.chmod(tmp, 0o755)  # mkdtemp makes it owner-only; a model server may run as another user.
    if os.path.exists(final):  # overwrite=True
      shutil.rmtree(final)
    os.rename(tmp, final)  # Atomic on one filesystem: the version appears whole or not at all.
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  return final


def write_card(directory: str, card: dict) -> None:
  provenance.write_json(os.path.join(directory, "model_card.json"), card)


def pixel_contract(image_shape) -> dict:
  """The `images` input of every exported file, as the model card states it."""
  return {"dtype": "uint8", "shape": [-1, *image_shape], "range": [0, 255],
          "description": "pixels exactly as the dataset stores them (MNIST: a light digit "
                         "on a black background); scaling is inside the model"}


def check_tflite_contract(backend, entry: dict, variant: str) -> None:
  """A TFLite file's real tensors must be what its card entry promises an app: each input
  of the entry's dtype with no quantization, each output of the entry's dtype."""
  inputs, outputs = backend.input_details(), backend.output_details()
  problems = []
  for kind, promised, actual in (("input", entry["inputs"], inputs),
                                 ("output", entry["outputs"], outputs)):
    if set(promised) != set(actual):
      problems.append(f"{kind}s {sorted(actual)} instead of {sorted(promised)}")
      continue
    for key, spec in promised.items():
      dtype = np.dtype(actual[key]["dtype"])
      scales = actual[key]["quantization_parameters"]["scales"]
      if dtype != np.dtype(spec["dtype"]) or len(scales):
        problems.append(f"{kind} {key!r} is {dtype}{' quantized' if len(scales) else ''}, "
                        f"the card says {spec['dtype']}")
  if problems:
    raise ExportError(f"TFLite {variant} file breaks the card's contract: "
                      + "; ".join(problems) + ".")


def parity_table(card: dict) -> str:
  """The parity figures and checks of a model card as a plain-text table (for export.py)."""
  keys = list(dict.fromkeys(k for p in card["parity"].values() for k in p))
  def fmt(key, value):
    if key == "accuracy" or key.endswith("agreement"):
      return f"{100 * value:.2f} %"
    return f"{value:.2e}" if isinstance(value, float) and abs(value) < 0.01 else f"{value:.4g}"
  rows = [("file", *(k.replace("_", " ") for k in keys), "size")]
  for file, p in card["parity"].items():
    size = card["files"][file].get("bytes")
    rows.append((file, *(fmt(k, p[k]) if k in p else "" for k in keys),
                 f"{size / 1e6:.2f} MB" if size else ""))
  widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
  lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
  metrics = card["metrics"]
  summary = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()
                      if isinstance(v, float) and not isinstance(v, bool))
  count = next((metrics[k] for k in ("num_examples", "num_samples", "num_images")
                if k in metrics), None)
  lines.insert(0, f"Parity on {metrics.get('split', 'fixed inputs')} ({count} examples); "
                  f"{summary}:")
  lines += [f"{'PASS' if c['passed'] else 'FAIL'}  {c['check']} (value {c['value']:.4g})"
            for c in card["checks"]]
  return "\n".join(lines)
