"""The apps' floor: read an exported model's card and run its files, with no Keras model code.

  backend, card = runtime.open_model("saved_models/mnist_cnn")      # newest version
  backend.run("serving_default", images=pixels)                    # numpy in, numpy out

An exported version directory holds a SavedModel, TFLite files and `model_card.json`, which
says what each file takes and returns. A *backend* runs one of those files by signature
name: `SavedModelBackend` (TensorFlow), `TFLiteBackend` (LiteRT, built-in ops only), or
`FunctionBackend`, the not-yet-exported serving functions themselves (how a task evaluates
its Keras model through the very graphs it exports). A *front* (`Predictor` subclass, one per
task, in `zoo.tasks`) sits on a backend and speaks the task's language (`predict`,
`generate_seeds`, `detect`); `zoo.load` picks it from the card's `task`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
from typing import Callable, Mapping, Sequence

import numpy as np

from zoo import errors, presets

CARD = "model_card.json"
log = logging.getLogger("zoo")


def read_json_object(path: str, what: str, required: Sequence[str] = ()) -> dict:
  """A JSON file that must hold an object (with the `required` keys), or one line naming
  the file, `what` it is and what was wrong.

  Raises:
    errors.InvalidValueError: unreadable, not JSON, not an object, or a key missing.
  """
  try:
    with open(path, "rb") as f:
      value = json.loads(f.read())
  except OSError as e:
    raise errors.InvalidValueError(f"Invalid {what} {path!r}: cannot read it "
                                   f"({e.strerror or type(e).__name__}).") from None
  except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError, ...
    where = f" at line {e.lineno}" if isinstance(e, json.JSONDecodeError) else ""
    raise errors.InvalidValueError(f"Invalid {what} {path!r}: not valid JSON{where} "
                                   "(damaged or truncated?).") from None
  if not isinstance(value, dict):
    raise errors.InvalidValueError(f"Invalid {what} {path!r}: expected a JSON object, found "
                                   f"a JSON {type(value).__name__}.")
  missing = [key for key in required if key not in value]
  if missing:
    raise errors.InvalidValueError(f"Invalid {what} {path!r}: no {', '.join(missing)}.")
  return value


# What every model card holds, whatever its task (each task's front checks the rest).
CARD_KEYS = ("task",)


def read_card(version_dir: str) -> dict:
  """The model card of an exported version directory (one line if it is damaged)."""
  card_path = os.path.join(version_dir, CARD)
  if not os.path.exists(card_path):
    raise errors.NotFoundError(f"No {CARD} in {version_dir!r}: not a zoo export.")
  return read_json_object(card_path, "model card", CARD_KEYS)


def newest_version(model_dir: str) -> str:
  """`model_dir/<n>` for the largest integer version `n` in a TF Serving model directory."""
  versions = [int(d) for d in os.listdir(model_dir)
              if d.isdigit() and os.path.isdir(os.path.join(model_dir, d))]
  if not versions:
    raise errors.NotFoundError(f"Invalid value for `path`: {model_dir!r} has no version "
                               "directories (1/, 2/, ...).")
  return os.path.join(model_dir, str(max(versions)))


class SavedModelBackend:
  """Runs a SavedModel's named signatures; inputs and outputs are numpy arrays by name."""

  kind = "saved_model"

  def __init__(self, version_dir: str):
    # Lazy: apps that only run .tflite files never pay for importing TensorFlow.
    import tensorflow as tf
    self.path = version_dir
    self._loaded = tf.saved_model.load(version_dir)
    self.signatures = set(self._loaded.signatures.keys())

  def run(self, signature: str = "serving_default", **inputs) -> dict:
    outputs = self._loaded.signatures[signature](**inputs)
    return {k: v.numpy() for k, v in outputs.items()}


class TFLiteBackend:
  """Runs a .tflite file's signature in LiteRT (built-in ops only), resizing the batch."""

  kind = "tflite"

  def __init__(self, path: str):
    # Lazy: LiteRT is only needed for .tflite files.
    from ai_edge_litert import interpreter as litert
    self.path = path
    # BUILTIN: refuse any model that would need Flex (TensorFlow) ops.
    self._interpreter = litert.Interpreter(
        model_path=path, experimental_op_resolver_type=litert.OpResolverType.BUILTIN)
    self.signatures = set(self._interpreter.get_signature_list())
    self._runners = {}

  def _runner(self, signature):
    if signature not in self._runners:
      self._runners[signature] = self._interpreter.get_signature_runner(signature)
    return self._runners[signature]

  def input_details(self, signature: str = "serving_default") -> dict:
    """Input tensor details by input name (dtype, shape, quantization, ...)."""
    return self._runner(signature).get_input_details()

  def output_details(self, signature: str = "serving_default") -> dict:
    return self._runner(signature).get_output_details()

  def run(self, signature: str = "serving_default", **inputs) -> dict:
    details = self.input_details(signature)
    feed = {k: np.asarray(v).astype(details[k]["dtype"]) for k, v in inputs.items()}
    return dict(self._runner(signature)(**feed))


# ONNX Runtime's element types -> numpy dtypes (those the zoo's files use).
_ONNX_TYPES = {"tensor(uint8)": np.uint8, "tensor(float)": np.float32,
               "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(bool)": np.bool_,
               "tensor(string)": np.object_}
ONNX_FILE = "model.onnx"


class ONNXBackend:
  """Runs a .onnx file in ONNX Runtime with only its CPU provider; one signature,
  `serving_default`, the SavedModel's, with the same input and output names."""

  kind = "onnx"

  def __init__(self, path: str):
    # Lazy: ONNX Runtime is an optional extra (`pip install -e '.[onnx]'`).
    try:
      import onnxruntime
    except ImportError as e:
      raise errors.NotFoundError(
          f"Loading {path!r} needs ONNX Runtime: pip install -e '.[onnx]'.") from e
    self.path = path
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # Errors only: no graph-optimizer chatter.
    self._session = onnxruntime.InferenceSession(path, sess_options=options,
                                                 providers=["CPUExecutionProvider"])
    self.signatures = {"serving_default"}

  @staticmethod
  def _details(args) -> dict:
    return {a.name: {"dtype": _ONNX_TYPES.get(a.type, a.type), "shape": a.shape}
            for a in args}

  def input_details(self, signature: str = "serving_default") -> dict:
    """Input names -> `{dtype, shape}` (numpy dtype; None or a name for a free dimension)."""
    return self._details(self._session.get_inputs())

  def output_details(self, signature: str = "serving_default") -> dict:
    return self._details(self._session.get_outputs())

  def run(self, signature: str = "serving_default", **inputs) -> dict:
    details = self.input_details()
    feed = {k: np.asarray(v).astype(details[k]["dtype"]) for k, v in inputs.items()}
    names = [o.name for o in self._session.get_outputs()]
    return dict(zip(names, self._session.run(names, feed)))


class FunctionBackend:
  """The serving functions of a model that is not exported yet, run as a backend.

  A task evaluates its Keras model through the same functions it writes into the
  SavedModel, behind the same front as the exported files; so "parity" is one evaluator
  run on each backend.

  Args:
    functions: `{signature name: fn(**named tensors) -> dict of tensors}` (tf.functions).
    path: what to report as the model's location.
  """

  kind = "keras"

  def __init__(self, functions: Mapping[str, Callable], path: str = "<in memory>"):
    self.path = path
    self._functions = dict(functions)
    self.signatures = set(self._functions)

  def run(self, signature: str = "serving_default", **inputs) -> dict:
    outputs = self._functions[signature](**inputs)
    return {k: np.asarray(v) for k, v in outputs.items()}


FILE_BACKENDS = {".tflite": TFLiteBackend, ".onnx": ONNXBackend}
KINDS = ("saved_model", "onnx")


def open_model(path: str, kind: str = "saved_model"):
  """The backend and model card of an exported model.

  Args:
    path: a `.tflite` or `.onnx` file, a version directory (`saved_models/mnist_cnn/3`),
      a model directory (`saved_models/mnist_cnn`, whose newest version is used), or a
      preset's name (`mnist_cnn`, `mnist_cnn:3`; `zoo.presets`), when no such path exists.
    kind: for a directory, the file to run: `saved_model` or `onnx` (its `model.onnx`).

  Returns:
    `(backend, card)`.
  """
  if presets.looks_like_spec(path):
    path = presets.resolve(path)
  suffix = os.path.splitext(path)[1]
  if suffix in FILE_BACKENDS:
    if not os.path.isfile(path):
      raise errors.NotFoundError(f"Invalid value for `path`: no such file {path!r}.")
    card = read_card(os.path.dirname(os.path.abspath(path)))
    return _open_backend(FILE_BACKENDS[suffix], path), card
  if not os.path.isdir(path):
    raise errors.NotFoundError(f"Invalid value for `path`: {path!r} is neither a .tflite "
                               "or .onnx file nor a directory.")
  if kind not in KINDS:
    raise errors.InvalidValueError(f"Invalid value for `kind`: expected one of "
                                   f"{list(KINDS)}. Received: kind={kind!r}")
  if not os.path.exists(os.path.join(path, "saved_model.pb")):
    path = newest_version(path)
  card = read_card(path)
  if kind == "onnx":
    if not os.path.exists(os.path.join(path, ONNX_FILE)):
      raise errors.NotFoundError(f"Invalid value for `kind`: {path!r} has no {ONNX_FILE} "
                                 "(exported before ONNX, or with --noonnx).")
    return _open_backend(ONNXBackend, os.path.join(path, ONNX_FILE)), card
  return _open_backend(SavedModelBackend, path), card


def _open_backend(backend, path: str):
  """`backend(path)`, or one line naming the file when its runtime cannot load it."""
  try:
    return backend(path)
  except errors.ZooError:
    raise
  except Exception as e:  # noqa: BLE001  Each runtime raises its own types for a bad file.
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    reason = "".join(c if c.isprintable() else "?" for c in (lines[0] if lines else ""))[:160]
    raise errors.InvalidValueError(
        f"Invalid model file {path!r}: {backend.kind} cannot load it ({type(e).__name__}: "
        f"{reason}); damaged or truncated? Export it again.") from None


class Predictor:
  """Common front of every task: the card, the backend, what was loaded."""

  def __init__(self, backend, card: dict):
    self.backend = backend
    self.card = card
    self.kind = backend.kind
    self.path = backend.path
    self.version = card.get("version")

  @property
  def source(self) -> dict:
    """What was loaded: the model's name and version, the file or directory, its kind."""
    return {"name": self.card.get("name"), "version": self.version, "kind": self.kind,
            "path": self.path}

  def run_files(self, paths: Sequence[str], options: dict) -> list[dict]:
    """`scripts/predict.py`'s work: one JSON-ready dict per file (a task's front that
    takes image files overrides it)."""
    raise errors.InvalidValueError(
        f"Invalid value for `--model`: {self.path!r} is a {self.card.get('task')} model; "
        "it takes no image files (see scripts/generate.py for generators).")


def check_array(name, value, dtype, shape_tail) -> np.ndarray:
  """`value` as a numpy array of `dtype` and shape `[N, *shape_tail]`, or a clear error."""
  value = np.asarray(value)
  if value.dtype != np.dtype(dtype):
    raise errors.InvalidValueError(f"Invalid value for `{name}`: expected dtype "
                                   f"{np.dtype(dtype)}. Received: dtype={value.dtype}")
  if value.ndim != 1 + len(shape_tail) or tuple(value.shape[1:]) != tuple(shape_tail):
    raise errors.InvalidValueError(f"Invalid value for `{name}`: expected shape "
                                   f"[N{''.join(', ' + str(d) for d in shape_tail)}]. "
                                   f"Received: shape={list(value.shape)}")
  return value


# The largest encoded image (one file or one request item) read, in bytes: a 50-megapixel
# PNG photo is 60-100 MB. `zoo.data.images` holds exported graphs to it too.
MAX_IMAGE_BYTES = 128 * 2**20
# The line a budget check in zoo.data.images fails with, inside TensorFlow's error text.
_BUDGET_LINE = re.compile(r"(?:image|request) of [^\]\n']* is over the budget [^\]\n']*")


def budget_line(error: Exception):
  """The one line of an image over a budget of zoo.data.images, found in a TensorFlow
  error's text, or None."""
  found = _BUDGET_LINE.search(str(error))
  return found.group(0) if found else None


def read_image_file(path: str, max_bytes: int = MAX_IMAGE_BYTES) -> bytes:
  """The bytes of one regular file of at most `max_bytes`: a FIFO, device or folder is
  refused without reading (opened non-blocking, so a FIFO without writer does not hang).

  Raises:
    OSError: missing or unreadable.
    errors.InvalidValueError: not a regular file, or too large.
  """
  fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
  try:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
      raise errors.InvalidValueError("not a regular file (a FIFO, device or folder is not "
                                     "read)")
    if info.st_size > max_bytes:
      raise errors.InvalidValueError(f"file of {info.st_size:,} bytes is over the budget of "
                                     f"{max_bytes:,} bytes for an image")
  except BaseException:
    os.close(fd)
    raise
  with os.fdopen(fd, "rb") as f:
    raw = f.read(max_bytes + 1)
  if len(raw) > max_bytes:  # Grew while read.
    raise errors.InvalidValueError(f"file is over the budget of {max_bytes:,} bytes for an "
                                   "image")
  return raw


def read_image_files(paths: Sequence[str], decode: Callable[[bytes], object]) -> list:
  """Reads and decodes image files one by one: a list, per path, of `(path, decoded)` or
  `(path, {"file", "error"})` for a missing, unreadable, non-regular, over-budget or
  non-image file, so that one bad file does not stop the others (`read_image_file`; the
  pixel budget is `decode`'s, zoo.data.images.MAX_IMAGE_PIXELS)."""
  import tensorflow as tf  # Lazy, as in SavedModelBackend: only image files need it.
  results = []
  for path in paths:
    try:
      results.append((path, decode(read_image_file(path))))
    except OSError as e:
      results.append((path, {"file": path, "error": f"cannot read file: {e.strerror or e}"}))
    except errors.InvalidValueError as e:
      results.append((path, {"file": path, "error": str(e)}))
    except tf.errors.ResourceExhaustedError:
      results.append((path, {"file": path, "error": "out of memory decoding it"}))
    except (tf.errors.InvalidArgumentError, ValueError) as e:
      results.append((path, {"file": path, "error": budget_line(e) or (
          "not a decodable image (expected PNG, JPEG, GIF, BMP or WebP)")}))
  return results
