"""Exports a run directory for apps: SavedModel (TF Serving layout) + TFLite, parity-checked.

  exports/<name>/<version>/        (`saved_models/` holds the zoo's shipped models)
    saved_model.pb, variables/, assets/   SavedModel; signatures below
    model_float32.tflite, model_float16.tflite, model_dynamic_int8.tflite, model_int8.tflite
    labels.txt                            one label name per line, in class order
    model_card.json                       specs, metrics, parity, files, config, provenance

One input convention for every file: `images` uint8 [N, H, W, C], pixels 0-255 exactly as
the dataset stores them (MNIST: light digit on black); scaling to [0, 1] is inside each
graph. The card states it for every file (`files.<name>.inputs`), and the exporter checks
each TFLite file's actual input and output tensors against it.

SavedModel signatures (named inputs and outputs):
  serving_default(images: uint8 [N, H, W, C])      -> probabilities, classes, labels
  serve_image_bytes(image_bytes: string [N])       -> the same + inverted: PNG/JPEG of any
      size; a dark-on-light photo is inverted to the dataset's polarity (`inverted` True)
TFLite files (all four): images uint8 [N, H, W, C] -> probabilities float32 [N, K].

The export is written to a temporary directory beside the target and renamed into place
only when every parity check passed: an interrupted or failed export leaves no version.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Callable, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from zoo import data, evaluate, predictor, provenance, registry

TFLITE_VARIANTS = ("float32", "float16", "dynamic_int8", "int8")

# Parity targets (see BENCHMARKS.md): top-1 agreement with the Keras model for the float
# files and the SavedModel; for the int8 files, accuracy within 0.2 points of float.
MIN_AGREEMENT = {"saved_model": 0.999, "float32": 0.999, "float16": 0.999}
MAX_INT8_ACCURACY_DROP = 0.002
MAX_INT8_SIZE_RATIO = 0.30


class ExportError(RuntimeError):
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


def _outputs(probabilities, class_names):
  classes = tf.argmax(probabilities, axis=-1)
  return {"probabilities": tf.cast(probabilities, tf.float32), "classes": classes,
          "labels": tf.gather(tf.constant(class_names), classes)}


def write_saved_model(model: keras.Model, path: str, image_shape, class_names) -> None:
  """Writes the two-signature SavedModel (see module docstring) to `path`."""
  names = list(class_names)

  def serve_images(images):
    return _outputs(model(data.normalize_images(images), training=False), names)

  def serve_image_bytes(image_bytes):
    images, inverted = tf.map_fn(
        lambda b: data.match_dataset_polarity(data.decode_image_bytes(b, image_shape)),
        image_bytes, fn_output_signature=(tf.TensorSpec(image_shape, tf.uint8),
                                          tf.TensorSpec([], tf.bool)))
    return {**serve_images(images), "inverted": inverted}

  # No archive.track(model): the endpoints capture the variables already, and tracking
  # the model too stores every weight twice (keras-team/keras issue 23553, open).
  archive = keras.export.ExportArchive()
  archive.add_endpoint("serving_default", serve_images, input_signature=[
      tf.TensorSpec([None, *image_shape], tf.uint8, name="images")])
  archive.add_endpoint("serve_image_bytes", serve_image_bytes, input_signature=[
      tf.TensorSpec([None], tf.string, name="image_bytes")])
  archive.write_out(path, verbose=False)


def write_tflite_source(model: keras.Model, path: str, image_shape) -> None:
  """Writes the SavedModel every TFLite file is converted from: uint8 `images` (scaled
  inside, as in the SavedModel) -> float32 `probabilities`. (Converting a Keras concrete
  function directly leaves READ_VARIABLE ops that int8 calibration cannot run; a SavedModel
  is frozen properly.)"""
  archive = keras.export.ExportArchive()  # Untracked model: see write_saved_model.
  archive.add_endpoint(
      "serving_default",
      lambda images: {"probabilities": model(data.normalize_images(images), training=False)},
      input_signature=[tf.TensorSpec([None, *image_shape], tf.uint8, name="images")])
  archive.write_out(path, verbose=False)


def convert_tflite(source_dir: str, variant: str, calibration_images=None) -> bytes:
  """Converts the SavedModel from `write_tflite_source` to one TFLite variant, built-in ops
  only: `float32`, `float16` (float16 weights), `dynamic_int8` (int8 weights, float
  activations) or `int8` (int8 weights and activations, calibrated on
  `calibration_images`, uint8 pixels [N, H, W, C]). Every variant keeps the source's
  uint8 pixel input and float32 probability output."""
  if variant not in TFLITE_VARIANTS:
    raise ValueError(f"Invalid value for `variant`: expected one of {list(TFLITE_VARIANTS)}. "
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
      raise ValueError("The int8 variant needs `calibration_images`.")
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([img[None]] for img in calibration_images)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8  # The pixels themselves, not a quantization.
    converter.inference_output_type = tf.float32
  return converter.convert()


def _agreement(reference: np.ndarray, probabilities: np.ndarray, labels: np.ndarray) -> dict:
  return {
      "accuracy": float(np.mean(np.argmax(probabilities, -1) == labels)),
      "top1_agreement": float(np.mean(np.argmax(probabilities, -1) == np.argmax(reference, -1))),
      "max_abs_diff": float(np.max(np.abs(probabilities - reference))),
  }


def _next_version(model_root: str) -> int:
  if not os.path.isdir(model_root):
    return 1
  versions = [int(d) for d in os.listdir(model_root) if d.isdigit()]
  return max(versions, default=0) + 1


def export_run(model_dir: str, *, export_dir: str = "exports", name: Optional[str] = None,
               version: Optional[int] = None, overwrite: bool = False,
               variants: Sequence[str] = TFLITE_VARIANTS, parity_split: Optional[str] = None,
               calibration_examples: int = 500, data_dir: Optional[str] = None,
               manual_dir: Optional[str] = None, allow_download: bool = False,
               min_agreement: Optional[dict] = None,
               max_int8_accuracy_drop: float = MAX_INT8_ACCURACY_DROP) -> str:
  """Exports the run in `model_dir` to `export_dir/<name>/<version>/`; returns that path.

  Args:
    model_dir: a run directory written by `zoo.train.train_and_evaluate`.
    export_dir: root of the TF Serving model directories. Users' exports go to `exports/`;
      `saved_models/` holds the models the zoo ships (tests pin their versions there).
    name: model name (default: the run's recipe name).
    version: integer version (default: the next free one).
    overwrite: replace an existing version.
    variants: TFLite variants to write (any of `TFLITE_VARIANTS`).
    parity_split: split the exported artifacts are scored on (default: the run's eval split).
    calibration_examples: training images (from the zoo pipeline) calibrating int8.
    data_dir, manual_dir, allow_download: see `zoo.data.prepare_builder`.
    min_agreement: top-1 agreement required per artifact (default `MIN_AGREEMENT`).
    max_int8_accuracy_drop: largest accuracy drop of the int8 file vs the Keras model.

  Raises:
    FileExistsError: the version exists and `overwrite` is False.
    ExportError: a parity or size check failed (nothing is written).
  """
  config, trained = evaluate.load_run(model_dir)
  with open(os.path.join(model_dir, "run_card.json")) as f:
    run_card = json.load(f)
  name = name or config.recipe or config.model
  root = os.path.join(export_dir, name)
  version = version if version is not None else _next_version(root)
  if isinstance(version, bool) or not isinstance(version, int) or version < 1:
    raise ValueError(f"Invalid value for `version`: expected an integer >= 1. "
                     f"Received: version={version!r}")
  final = os.path.join(root, str(version))
  if os.path.exists(final) and not overwrite:
    raise FileExistsError(f"{final!r} exists; pass --overwrite to replace it, or omit "
                          "--version to write the next free one.")

  builder = data.prepare_builder(config.dataset, data_dir=data_dir, manual_dir=manual_dir,
                                 allow_download=allow_download)
  info = data.dataset_info(builder)
  model = float32_twin(lambda: registry.build_model(config, input_shape=info.image_shape,
                                                    num_classes=info.num_classes), trained)
  split = parity_split or config.eval_split
  images, labels = data.split_arrays(builder, split)
  reference = model.predict(data.normalize_images(images), batch_size=1000, verbose=0)
  pixels = pixel_contract(info.image_shape)

  os.makedirs(root, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=root)
  try:
    write_saved_model(model, tmp, info.image_shape, info.class_names)
    with open(os.path.join(tmp, "labels.txt"), "w") as f:
      f.write("\n".join(info.class_names) + "\n")
    calibration = None
    if "int8" in variants:  # Training pixels (TFDS's stored order is already shuffled).
      calibration, _ = data.split_arrays(builder, config.train_split, calibration_examples)
    files = {"saved_model": {"path": ".", "signatures": _signature_specs(info, pixels)}}
    with tempfile.TemporaryDirectory(dir=root) as source:
      if variants:
        write_tflite_source(model, source, info.image_shape)
      for variant in variants:
        path = f"model_{variant}.tflite"
        with open(os.path.join(tmp, path), "wb") as f:
          f.write(convert_tflite(source, variant, calibration))
        files[variant] = {"path": path, "bytes": os.path.getsize(os.path.join(tmp, path)),
                          "inputs": {"images": pixels},
                          "outputs": {"probabilities": {"dtype": "float32",
                                                        "shape": [-1, info.num_classes]}}}

    card = {
        "name": name, "version": version, "task": "image_classification",
        "image_shape": list(info.image_shape), "labels": list(info.class_names),
        "files": files,
        "metrics": {"split": split, "num_examples": int(len(labels)),
                    "keras_accuracy": float(np.mean(np.argmax(reference, -1) == labels))},
        "training": {"model_dir": os.path.abspath(model_dir), "config": config.to_dict(),
                     "dtype_policy": run_card.get("dtype_policy"),
                     "git_commit": run_card.get("git_commit"),
                     "versions": run_card.get("versions")},
        **{k: v for k, v in provenance.describe().items() if k != "machine"},
    }
    _write_card(tmp, card)  # Predictors read labels and shapes from it.
    parity = {"saved_model": _agreement(
        reference, predictor.SavedModelPredictor(tmp).predict(images)["probabilities"], labels)}
    for variant in variants:
      p = predictor.TFLitePredictor(os.path.join(tmp, files[variant]["path"]))
      _check_tflite_contract(p, files[variant], variant)
      parity[variant] = _agreement(reference, p.predict(images)["probabilities"], labels)
    card["parity"] = parity
    card["checks"] = _check_parity(card, min_agreement or MIN_AGREEMENT,
                                   max_int8_accuracy_drop)
    _write_card(tmp, card)
    failed = [c for c in card["checks"] if not c["passed"]]
    if failed:
      raise ExportError(f"Export of {model_dir!r} failed its parity checks: {failed}. "
                        "Nothing was written.")
    os.chmod(tmp, 0o755)  # mkdtemp makes it owner-only; a model server may run as another user.
    if os.path.exists(final):  # overwrite=True
      shutil.rmtree(final)
    os.rename(tmp, final)  # Atomic on one filesystem: the version appears whole or not at all.
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  return final


def _write_card(directory, card):
  provenance.write_json(os.path.join(directory, "model_card.json"), card)


def read_card(version_dir: str) -> dict:
  """The model card of an exported version directory."""
  with open(os.path.join(version_dir, "model_card.json")) as f:
    return json.load(f)


def pixel_contract(image_shape) -> dict:
  """The `images` input of every exported file, as the model card states it."""
  return {"dtype": "uint8", "shape": [-1, *image_shape], "range": [0, 255],
          "description": "pixels exactly as the dataset stores them (MNIST: a light digit "
                         "on a black background); scaling is inside the model"}


def _check_tflite_contract(p: "predictor.TFLitePredictor", entry: dict, variant: str) -> None:
  """The file's real tensors must be what its card entry promises an app."""
  inp, out = p.input_details, p.output_details
  expected_in = np.dtype(entry["inputs"]["images"]["dtype"])
  if (np.dtype(inp["dtype"]) != expected_in or any(inp["quantization"])
      or np.dtype(out["dtype"]) != np.float32):
    raise ExportError(
        f"TFLite {variant} file breaks the card's contract: input {np.dtype(inp['dtype'])} "
        f"quantization {inp['quantization']}, output {np.dtype(out['dtype'])}; expected "
        f"{expected_in} pixels with no quantization and float32 probabilities.")


def _signature_specs(info, pixels) -> dict:
  outputs = {"probabilities": {"dtype": "float32", "shape": [-1, info.num_classes]},
             "classes": {"dtype": "int64", "shape": [-1]},
             "labels": {"dtype": "string", "shape": [-1]}}
  return {
      "serving_default": {"inputs": {"images": pixels}, "outputs": outputs},
      "serve_image_bytes": {
          "inputs": {"image_bytes": {
              "dtype": "string", "shape": [-1],
              "description": "encoded PNG/JPEG/GIF/BMP, any size, gray or RGB; a dark "
                             "digit on light paper is inverted to the dataset's polarity"}},
          "outputs": {**outputs, "inverted": {"dtype": "bool", "shape": [-1]}}},
  }


def parity_table(card: dict) -> str:
  """The parity figures and checks of a model card as a plain-text table (for export.py)."""
  rows = [("file", "accuracy", "top-1 agreement", "max |diff|", "size")]
  for key, p in card["parity"].items():
    size = card["files"][key].get("bytes")
    rows.append((key, f"{100 * p['accuracy']:.2f} %", f"{100 * p['top1_agreement']:.2f} %",
                 f"{p['max_abs_diff']:.2e}", f"{size / 1e6:.2f} MB" if size else ""))
  widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
  lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
  metrics = card["metrics"]
  lines.insert(0, f"Parity on {metrics['split']} ({metrics['num_examples']} images), Keras "
                  f"model accuracy {100 * metrics['keras_accuracy']:.2f} %:")
  lines += [f"{'PASS' if c['passed'] else 'FAIL'}  {c['check']} (value {c['value']:.4g})"
            for c in card["checks"]]
  return "\n".join(lines)


def _check_parity(card, min_agreement, max_int8_drop) -> list[dict]:
  parity, files = card["parity"], card["files"]
  float_acc = card["metrics"]["keras_accuracy"]
  checks = []
  for key, minimum in min_agreement.items():
    if key in parity:
      checks.append({"check": f"{key} top-1 agreement >= {minimum}",
                     "value": parity[key]["top1_agreement"],
                     "passed": parity[key]["top1_agreement"] >= minimum})
  if "int8" in parity:
    drop = float_acc - parity["int8"]["accuracy"]
    checks.append({"check": f"int8 accuracy within {max_int8_drop} of float",
                   "value": drop, "passed": drop <= max_int8_drop})
    if "float32" in files:
      ratio = files["int8"]["bytes"] / files["float32"]["bytes"]
      checks.append({"check": f"int8 file <= {MAX_INT8_SIZE_RATIO} x float32 file",
                     "value": ratio, "passed": ratio <= MAX_INT8_SIZE_RATIO})
  return checks
