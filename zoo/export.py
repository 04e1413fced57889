"""Exports a run directory for apps: SavedModel (TF Serving layout) + TFLite, checked.

  exports/<name>/<version>/        (`saved_models/` holds the zoo's shipped models)
    saved_model.pb, variables/, assets/   SavedModel with the task's named signatures
    model_<variant>.tflite                TFLite files, built-in ops only
    labels.txt                            (classifiers) one label name per line
    model_card.json                       task, specs, metrics, parity, checks, files,
                                          config, provenance

One `export_run` serves every task: the task (`zoo.tasks`, from the run's config) says
what its files hold, and `zoo.tasks.base.Task.export` writes them and runs the task's one
evaluator on the Keras model and on every file (`zoo.artifacts` does the writing and
converting). This module loads the run, makes the float32 twin, and makes the version
directory appear atomically: it is written to a temporary directory beside the target and
renamed into place only when every check passed, so an interrupted or failed export leaves
no version. See `zoo/tasks/<task>.py` for each task's files.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
from typing import Optional, Sequence

import tensorflow as tf

from zoo import artifacts, data, errors, provenance, registry, rundir, runtime, tasks
from zoo.configs import TrainConfig


def _next_version(model_root: str) -> int:
  if not os.path.isdir(model_root):
    return 1
  versions = [int(d) for d in os.listdir(model_root) if d.isdigit()]
  return max(versions, default=0) + 1


def export_run(model_dir: str, *, export_dir: str = "exports", name: Optional[str] = None,
               version: Optional[int] = None, overwrite: bool = False,
               variants: Optional[Sequence[str]] = None, data_dir: Optional[str] = None,
               manual_dir: Optional[str] = None, allow_download: bool = False,
               onnx: bool = True, task_kwargs: Optional[dict] = None,
               require: Sequence[str] = (), **task_options) -> str:
  """Exports the run in `model_dir` to `export_dir/<name>/<version>/`; returns that path.

  Args:
    model_dir: a run directory written by `zoo.train.train_and_evaluate`.
    export_dir: root of the TF Serving model directories. Users' exports go to `exports/`;
      `saved_models/` holds the models the zoo ships (tests pin their versions there).
    name: model name (default: the run's recipe name).
    version: integer version (default: the next free one).
    overwrite: replace an existing version.
    variants: TFLite variants to write (default: the task's `tflite_variants`).
    data_dir: TFDS data directory of the run's dataset (see `zoo.data.tfds_input.prepare_builder`).
    manual_dir: folder of the dataset's original files, if it is not prepared yet.
    allow_download: let TFDS download the dataset.
    onnx: also write `model.onnx` (the SavedModel's `serving_default` through tf2onnx),
      parity-checked in ONNX Runtime like every other file.
    task_kwargs: task knobs to change from the run's for this export (they act at
      inference, as detection's post-processing: `{"class_agnostic_nms": True}`); the card
      records them beside the training config.
    require: files (card keys: `float32`, `int8`, `onnx`, ...; `all` for every file
      written) whose failed check fails the whole export. Any other file that fails a
      check is left out of the version (the card's `left_out` says why) and the rest is
      written; the SavedModel is always required.
    **task_options: `parity_split` (the split every file is evaluated on; default the
      run's eval split) and the task's `export_options` (e.g. classification's
      `min_agreement`; see `zoo/tasks/<task>.py`).

  Raises:
    FileExistsError: the version exists and `overwrite` is False.
    zoo.artifacts.ExportError: a check of the SavedModel, of the whole export or of a
      required file failed (nothing is written).
  """
  config, trained = rundir.load_run(model_dir)
  task = tasks.get(config.task)
  trained_config = config
  if task_kwargs:
    unknown = sorted(set(task_kwargs) - set(task.task_kwargs))
    if unknown:
      raise errors.InvalidValueError(
          f"Invalid value for `task_kwargs`: {unknown} are not knobs of task {task.name!r}; "
          f"valid knobs: {sorted(task.task_kwargs)}."
          + errors.did_you_mean(unknown[0], task.task_kwargs))
    config = config.replace(task_kwargs={**config.task_kwargs, **task_kwargs})
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
  known = {"saved_model", *variants, *(("onnx",) if onnx else ())}
  require = set(known if "all" in require else require)
  if require - known:
    raise errors.InvalidValueError(
        f"Invalid value for `require`: {sorted(require - known)} are not files of this "
        f"export; expected some of {sorted(known)} or 'all'.")
  final = os.path.join(root, str(version))
  if os.path.exists(final) and not overwrite:
    raise errors.AlreadyExistsError(f"{final!r} exists; pass --overwrite to replace it, or "
                                    "omit --version to write the next free one.")

  builder = data.builder_for(config, data_dir=data_dir, manual_dir=manual_dir,
                             allow_download=allow_download,
                             prepared_dir=run_card.get("dataset_dir"))
  info = data.dataset_info(builder)
  model = artifacts.float32_twin(
      lambda: registry.build_model(config, input_shape=info.image_shape,
                                   num_classes=info.num_classes), trained)
  os.makedirs(root, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=root)
  try:
    card = {
        "name": name, "version": version, "task": task.name,
        "training": {"model_dir": run_card.get("model_dir") or os.path.abspath(model_dir),
                     "config": trained_config.to_dict(),
                     "dtype_policy": run_card.get("dtype_policy"),
                     "git_commit": run_card.get("git_commit"),
                     "versions": run_card.get("versions"),
                     # Weights read back from an earlier export (`restore_from_export`).
                     **({"restored_from": run_card["restored_from"]}
                        if "restored_from" in run_card else {})},
        **{k: v for k, v in provenance.describe().items() if k != "machine"},
    }
    if task_kwargs:
      card["task_kwargs_at_export"] = dict(task_kwargs)
    card = task.export(model, config, builder, tmp, card, variants=variants, onnx=onnx,
                       **task_options)
    card = _leave_out_failed_files(tmp, card, {"saved_model", *require}, model_dir)
    artifacts.write_card(tmp, card)
    os.chmod(tmp, 0o755)  # mkdtemp makes it owner-only; a model server may run as another user.
    if os.path.exists(final):  # overwrite=True
      shutil.rmtree(final)
    os.rename(tmp, final)  # Atomic on one filesystem: the version appears whole or not at all.
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  return final


def _leave_out_failed_files(directory: str, card: dict, required: set, model_dir: str) -> dict:
  """Removes each file that failed a check from `directory` and moves its card entry,
  parity and checks to the card's `left_out` (with `reason`: the failed checks and their
  figures); returns the card. A failed check of a
  `required` file, or of no file (the export as a whole), raises instead."""
  failed = [c for c in card["checks"] if not c["passed"]]
  fatal = [c for c in failed if c.get("file", "saved_model") in required]
  if fatal:
    raise artifacts.ExportError(f"Export of {model_dir!r} failed its checks: {fatal}. "
                                "Nothing was written.")
  card["left_out"] = {}
  for key in dict.fromkeys(c["file"] for c in failed):
    entry = card["files"].pop(key)
    os.remove(os.path.join(directory, entry["path"]))
    card["left_out"][key] = {
        "path": entry["path"], "parity": card["parity"].pop(key, None),
        "checks": [c for c in card["checks"] if c.get("file") == key],
        "reason": "; ".join(f"{c['check']}: value {c['value']:.4g}"
                            for c in failed if c["file"] == key)}
  card["checks"] = [c for c in card["checks"] if c.get("file") not in card["left_out"]]
  return card


def restore_from_export(version_dir: str, model_dir: str) -> None:
  """Writes a run directory holding the weights of an exported model version, so that it
  can be exported again with this zoo's signatures and files when its own run directory is
  gone (the shipped models were trained elsewhere). The config is the card's training
  config; the checkpoint is the recipe's model with every weight read, by name, from the
  SavedModel's variables; `run_card.json` says where they came from (`restored_from`).
  There is no `backup/`: the directory exports, it does not resume.

  Raises:
    zoo.errors.NotFoundError: `version_dir` has no model card or SavedModel.
    zoo.errors.InvalidValueError: the SavedModel lacks a weight of the rebuilt model.
  """
  card_path = os.path.join(version_dir, "model_card.json")
  if not os.path.exists(card_path) or not os.path.exists(
      os.path.join(version_dir, "saved_model.pb")):
    raise errors.NotFoundError(
        f"Invalid value for `from_export`: {version_dir!r} is not an exported model version "
        "(expected model_card.json and saved_model.pb, e.g. saved_models/mnist_cnn/3).")
  card = runtime.read_json_object(card_path, "model card", ("training",))
  config = TrainConfig.from_dict(card["training"]["config"])
  values = artifacts.saved_model_weights(version_dir)
  num_classes = len(card["labels"]) if "labels" in card else card.get("num_classes", 0)
  model = registry.build_model(config, input_shape=tuple(card["image_shape"]),
                               num_classes=num_classes)
  missing = [w.path for w in model.weights if w.path not in values]
  if missing:
    raise errors.InvalidValueError(
        f"Invalid value for `from_export`: {version_dir!r} lacks weights {missing[:5]} of "
        f"recipe {config.recipe!r}'s model; it was exported from another architecture.")
  for weight in model.weights:
    weight.assign(values[weight.path])
  os.makedirs(os.path.dirname(rundir.path(model_dir, rundir.CHECKPOINT)), exist_ok=True)
  model.save(rundir.path(model_dir, rundir.CHECKPOINT))
  training = card["training"]
  for name, content in ((rundir.CONFIG, config.to_dict()),
                        (rundir.RUN_CARD, {**{k: training.get(k) for k in
                                       ("config", "dtype_policy", "git_commit", "versions")},
                                    "model_dir": training.get("model_dir"),
                                    "restored_from": os.path.abspath(version_dir)})):
    with open(rundir.path(model_dir, name), "w") as f:
      json.dump(content, f, indent=2, sort_keys=True)


def export_again(version_dir: str, **kwargs) -> str:
  """`export_run` of the weights of an exported version (`restore_from_export`), through a
  temporary run directory; `kwargs` as `export_run`'s. Returns the new version's path."""
  with tempfile.TemporaryDirectory(prefix="zoo-restored-run-") as model_dir:
    restore_from_export(version_dir, model_dir)
    return export_run(model_dir, **kwargs)


def add_onnx(version_dir: str, *, data_dir: Optional[str] = None,
             manual_dir: Optional[str] = None, allow_download: bool = False) -> dict:
  """Adds `model.onnx` to an exported version that has none (one exported before ONNX,
  such as the zoo's shipped models), and returns the updated card.

  The file is converted from the version's own SavedModel `serving_default` (the Keras
  model is not needed) and checked as `export_run` checks it: its contract in ONNX
  Runtime, and the task's evaluator on the card's split, with the SavedModel as the
  reference (`parity.onnx.reference`). The card gains `files.onnx`, `parity.onnx` and the
  ONNX checks; nothing else changes. If a check fails, nothing is left behind.

  Raises:
    zoo.errors.AlreadyExistsError: the version has an ONNX file already.
    zoo.artifacts.ExportError: the ONNX file failed a check (it is removed).
  """
  card = runtime.read_card(version_dir)
  if "onnx" in card["files"]:
    raise errors.AlreadyExistsError(f"{version_dir!r} has {runtime.ONNX_FILE} already.")
  task = tasks.for_card(card)
  config = TrainConfig.from_dict(card["training"]["config"])
  builder = data.builder_for(config, data_dir=data_dir, manual_dir=manual_dir,
                             allow_download=allow_download)
  loaded = tf.saved_model.load(version_dir)  # Kept: the signature uses its variables.
  signature = loaded.signatures["serving_default"]
  specs = signature.structured_input_signature[1]
  names = sorted(specs)
  input_signature = [tf.TensorSpec(specs[n].shape, specs[n].dtype, name=n) for n in names]
  contract = card["files"]["saved_model"]["signatures"]["serving_default"]
  path = os.path.join(version_dir, runtime.ONNX_FILE)
  try:
    updated = copy.deepcopy(card)
    updated["files"]["onnx"] = artifacts.write_onnx(
        tf.function(lambda *args: signature(**dict(zip(names, args))),
                    input_signature=input_signature),
        input_signature, path, inputs=contract["inputs"], outputs=contract["outputs"])
    evaluator = task.evaluator(config, builder, card["metrics"]["split"])
    saved_model = task.front(runtime.SavedModelBackend(version_dir), updated)
    reference = evaluator.evaluate(task.predict_fn(saved_model))
    parity = task.parity(evaluator, reference, version_dir, updated, ["onnx"])["onnx"]
    updated["parity"]["onnx"] = {**parity, "reference": "saved_model"}
    onnx_checks = [c for c in task.checks(updated, **task.export_options)
                   if c["check"].startswith("onnx ")]
    updated["checks"] = card["checks"] + onnx_checks
    failed = [c for c in onnx_checks if not c["passed"]]
    if failed:
      raise artifacts.ExportError(f"{runtime.ONNX_FILE} for {version_dir!r} failed its "
                                  f"checks: {failed}. Nothing was written.")
    artifacts.write_card(version_dir, updated)  # Atomic: the old card or the new one.
  except BaseException:
    if os.path.exists(path) and "onnx" not in runtime.read_card(version_dir)["files"]:
      os.remove(path)
    raise
  return updated


def parity_table(card: dict) -> str:
  """The parity figures and checks of a model card as a plain-text table (for export.py),
  each figure formatted by the card's task."""
  task = tasks.for_card(card)
  keys = list(dict.fromkeys(k for p in card["parity"].values() for k in p))
  rows = [("file", *(k.replace("_", " ") for k in keys), "size")]
  for file, p in card["parity"].items():
    size = card["files"][file].get("bytes")
    rows.append((file, *(task.format_value(k, p[k]) if k in p else "" for k in keys),
                 f"{size / 1e6:.2f} MB" if size else ""))
  widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
  lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
  metrics = card["metrics"]
  summary = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()
                      if isinstance(v, float) and not isinstance(v, bool))
  lines.insert(0, f"Parity on {metrics.get('split', 'fixed inputs')} "
                  f"({metrics.get(task.count_key)} examples); {summary}:")
  lines += [f"{'PASS' if c['passed'] else 'FAIL'}  {c['check']} (value {c['value']:.4g})"
            for c in card["checks"]]
  lines += [f"LEFT OUT  {entry['path']}: {entry['reason']} (--require={key} makes this fatal)"
            for key, entry in card.get("left_out", {}).items()]
  return "\n".join(lines)
