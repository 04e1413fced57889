"""The artifacts floor: writing exported files and checking them against their card.

SavedModels with named signatures (`write_saved_model`), TFLite variants with built-in ops
only (`write_tflite_variants`, `convert_tflite`), the model card (`write_card`), and the
check that a TFLite file's real tensors are what its card promises (`check_tflite_contract`).
What goes into them is the task's (`zoo.tasks`); how the files are put together into one
version directory is `zoo.export`'s.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import warnings
from typing import Callable, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf
from google.protobuf import message
from tensorflow.core.protobuf import saved_model_pb2, trackable_object_graph_pb2

from zoo import errors, provenance, runtime

TFLITE_VARIANTS = ("float32", "float16", "dynamic_int8", "int8")
# ONNX opset of every model.onnx: 17 is the newest tf2onnx 1.17 documents as tested, and
# ONNX Runtime has run it since 1.11 (its NonMaxSuppression, Loop and Resize are standard).
ONNX_OPSET = 17


class ExportError(errors.ZooError, RuntimeError):
  """The export failed a check; nothing was written into the export directory."""


# Parity gates count answers, and a count out of a small evaluation set is noisy: on 600
# images one changed answer is 0.17 points. A gate with target rate `rate` fails a file only
# when its count is more than a file whose true rate is exactly `rate` would show with
# probability GATE_CONFIDENCE (a one-sided binomial test at 5 %): such a file fails 5 % of
# the time or less, whatever the set's size, and the bound tends to `rate` as the set grows.
GATE_CONFIDENCE = 0.95


def allowed_count(n: int, rate: float, confidence: float = GATE_CONFIDENCE) -> int:
  """The most events (changed or lost answers) out of `n` a parity gate with target `rate`
  lets pass: the `confidence` quantile of Binomial(n, rate), the smallest k with
  P(X <= k) >= confidence. -1 for a negative rate (an agreement above 1: no count passes).

  Args:
    n: the number of answers compared (examples of the evaluation split).
    rate: the target rate of events, in [0, 1] (e.g. 0.001 for a 0.999 agreement).
    confidence: the probability that a file exactly on target passes.
  """
  if rate < 0:
    return -1
  if rate == 0 or n == 0:
    return 0
  if rate >= 1:
    return n
  log_p, log_q = math.log(rate), math.log1p(-rate)
  cumulative = 0.0
  for k in range(n + 1):
    cumulative += math.exp(math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
                           + k * log_p + (n - k) * log_q)
    if cumulative >= confidence:
      return k
  return n


def saved_model_weights(version_dir: str) -> dict:
  """Every variable of an exported SavedModel, by name: the Keras weight paths of the model
  it was exported from (`dense/kernel`), as numpy arrays.

  Read from its files, never run: `saved_model.pb`'s object graph (a protobuf) names each
  variable, and the checkpoint in `variables/` holds its value under the key its node has
  in the checkpoint's own object graph (the two graphs number their nodes alike). Loading
  the SavedModel instead would run its resources' initializers, which a crafted export
  can make do anything (write a file); `tf.train.load_checkpoint` only reads tensors.

  Raises:
    zoo.errors.InvalidValueError: the files cannot be read (damaged, or not a SavedModel),
      naming the folder.
  """
  try:
    saved = saved_model_pb2.SavedModel()
    with open(os.path.join(version_dir, "saved_model.pb"), "rb") as f:
      saved.ParseFromString(f.read())
    nodes = saved.meta_graphs[0].object_graph_def.nodes
    reader = tf.train.load_checkpoint(os.path.join(version_dir, "variables", "variables"))
    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    values = {}
    for index, node in enumerate(nodes):
      if node.WhichOneof("kind") != "variable" or index >= len(graph.nodes):
        continue
      keys = [a.checkpoint_key for a in graph.nodes[index].attributes
              if a.name == "VARIABLE_VALUE"]
      if keys:
        values[node.variable.name.split(":")[0]] = np.asarray(reader.get_tensor(keys[0]))
  # A damaged file surfaces as any of these (IndexError: "Read less bytes than requested"
  # from TensorFlow's checkpoint reader; DecodeError from a damaged saved_model.pb).
  except (tf.errors.OpError, OSError, ValueError, IndexError, KeyError,
          message.DecodeError) as e:
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise errors.InvalidValueError(f"Cannot read the SavedModel in {version_dir!r} "
                                   f"(damaged or incomplete?): {first}") from e
  return values


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
                          calibration_images=None, int8_scope: Optional[str] = None) -> dict:
  """Converts `fn` over `input_signature` to each TFLite variant, writing
  `directory/model_<variant>.tflite`; returns the model card's `files` entries
  (`{variant: {path, bytes, inputs, outputs}}`, `inputs`/`outputs` as the card states them).
  `calibration_images` and `int8_scope`: as `convert_tflite`'s."""
  files = {}
  if not variants:
    return files
  with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(directory))) as source:
    write_tflite_source(fn, input_signature, source)
    for variant in variants:
      path = f"model_{variant}.tflite"
      with open(os.path.join(directory, path), "wb") as f:
        f.write(convert_tflite(source, variant, calibration_images, int8_scope))
      files[variant] = {"path": path, "bytes": os.path.getsize(os.path.join(directory, path)),
                        "inputs": inputs, "outputs": outputs}
  return files


def convert_tflite(source_dir: str, variant: str, calibration_images=None,
                   int8_scope: Optional[str] = None) -> bytes:
  """Converts the SavedModel from `write_tflite_source` to one TFLite variant, built-in ops
  only: `float32`, `float16` (float16 weights), `dynamic_int8` (int8 weights, float
  activations) or `int8` (int8 weights and activations, calibrated on
  `calibration_images`: uint8 pixels, an array [N, H, W, C] or a list of [H, W, C] images
  of any sizes). Every variant keeps the source's uint8 pixel input and float32 outputs.

  `int8_scope`: for `int8`, quantize only the ops under this Keras model's name scope (a
  detector's network) and keep every other op (its pre- and post-processing: letterbox,
  box decoding, NMS) in float, with a quantize/dequantize pair at the seams; the
  converter's selective quantization (`tf.lite.experimental.QuantizationDebugger` with
  `denylisted_nodes`). Without it, every op is int8 (`TFLITE_BUILTINS_INT8`)."""
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
    if int8_scope is not None:
      return _quantize_scope(converter, int8_scope)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8  # The pixels themselves, not a quantization.
    converter.inference_output_type = tf.float32
  return converter.convert()


def _quantize_scope(converter, scope: str) -> bytes:
  """int8 for the ops under name scope `scope` (Keras numbers repeated scopes `name_1`),
  float for the others; `converter` is set up for int8 calibration."""
  # TFLite's own flatbuffer reader and schema.
  from tensorflow.lite.python import schema_py_generated as schema
  from tensorflow.lite.tools import flatbuffer_utils
  inside = re.compile(rf"^{re.escape(scope)}(_\d+)?/")
  with warnings.catch_warnings():
    # The debugger builds a (deprecated) tf.lite.Interpreter for its own statistics; the
    # file it returns is run with LiteRT like every other.
    warnings.simplefilter("ignore", UserWarning)
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter, debug_dataset=converter.representative_dataset)
    model = flatbuffer_utils.convert_bytearray_to_object(debugger.calibrated_model)
    op_names = {code: name for name, code in vars(schema.BuiltinOperator).items()
                if not name.startswith("_")}
    nodes = {}  # output tensor name -> op name
    for graph in model.subgraphs:
      for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        kind = op_names[max(code.builtinCode, code.deprecatedBuiltinCode)]
        nodes.update((graph.tensors[i].name.decode(), kind) for i in op.outputs if i >= 0)
    # A fused op's output is named after all its parts ("a/conv;a/bias"): it is inside
    # only if every part is.
    outside = {n for n in nodes if not all(inside.match(p) for p in n.split(";"))}
    if len(outside) == len(nodes):
      raise ExportError(f"No op of the TFLite graph is under name scope {scope!r}; the "
                        "int8 file would be all float.")
    # Some ops (TOPK_V2) are quantized with their input whatever their node's name:
    # denylist the kinds of op that appear outside the scope only, too.
    kinds_inside = {nodes[n] for n in nodes if n not in outside}
    debugger.options = tf.lite.experimental.QuantizationDebugOptions(
        denylisted_nodes=sorted(outside),
        denylisted_ops=sorted({nodes[n] for n in outside} - kinds_inside))
    return debugger.get_nondebug_quantized_model()


def write_card(directory: str, card: dict) -> None:
  provenance.write_json(os.path.join(directory, runtime.CARD), card)


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


def write_onnx(fn: Callable, input_signature, path: str, *, inputs: dict, outputs: dict,
               opset: int = ONNX_OPSET) -> dict:
  """Converts `fn` over `input_signature` (the SavedModel's `serving_default`) to ONNX with
  tf2onnx, standard ONNX ops only; returns the model card's entry (`path`, `bytes`,
  `opset`, `inputs`, `outputs`). Inputs keep their `tf.TensorSpec` names, outputs the keys
  of `fn`'s dict, so the file is called as the SavedModel is."""
  try:
    # Lazy: an optional extra, needed only by ONNX exports.
    import tf2onnx
  except ImportError as e:
    raise errors.NotFoundError("ONNX export needs the onnx extra: pip install -e '.[onnx]' "
                               "(or pass --noonnx).") from e
  tf2onnx.logging.set_level(tf2onnx.logging.ERROR)
  function = fn if hasattr(fn, "get_concrete_function") else tf.function(
      fn, input_signature=input_signature)
  tmp = path + ".tmp"
  tf2onnx.convert.from_function(function, input_signature=input_signature, opset=opset,
                                output_path=tmp)
  os.replace(tmp, path)
  return {"path": os.path.basename(path), "bytes": os.path.getsize(path), "opset": opset,
          "runtime": "onnxruntime (CPUExecutionProvider)", "inputs": inputs,
          "outputs": outputs}


def check_onnx_contract(backend, entry: dict) -> None:
  """An ONNX file's real inputs and outputs must be the names and dtypes its card entry
  promises, and its ops (in loop bodies too) must all be standard ONNX or ONNX-ML ones: no
  custom op an app would have to register."""
  import onnx  # Lazy: the onnx extra, as in write_onnx.
  problems = []
  for kind, promised, actual in (("input", entry["inputs"], backend.input_details()),
                                 ("output", entry["outputs"], backend.output_details())):
    if set(promised) != set(actual):
      problems.append(f"{kind}s {sorted(actual)} instead of {sorted(promised)}")
      continue
    for key, spec in promised.items():
      want = np.dtype(object) if spec["dtype"] == "string" else np.dtype(spec["dtype"])
      if np.dtype(actual[key]["dtype"]) != want:
        problems.append(f"{kind} {key!r} is {actual[key]['dtype']}, the card says "
                        f"{spec['dtype']}")
  custom = sorted({node.domain for node in _onnx_nodes(onnx.load(backend.path).graph)}
                  - {"", "ai.onnx", "ai.onnx.ml"})
  if custom:
    problems.append(f"ops of custom domains {custom}")
  if problems:
    raise ExportError("ONNX file breaks the card's contract: " + "; ".join(problems) + ".")


def _onnx_nodes(graph):
  """Every node of an ONNX graph, those inside Loop/If bodies included."""
  for node in graph.node:
    yield node
    for attribute in node.attribute:
      for sub in [attribute.g, *attribute.graphs]:
        if sub.node:
          yield from _onnx_nodes(sub)
