"""TensorFlow Serving's JSON tensor format: request bodies to numpy, outputs to JSON.

Follows `tensorflow_serving/util/json_tensor.cc` (the REST API's reference), so a client
written for TensorFlow Serving gets the same answers here:

- Row format `{"instances": [...]}`: one element per example, stacked on a new first
  (batch) dimension. With one input, an element is the bare value (a nested list, a
  number, a string or `{"b64": "..."}`); with several, an object with exactly the input
  names. Answered as `{"predictions": [...]}`: the bare values of the only output, or one
  object per example when there are several outputs.
- Columnar format `{"inputs": ...}`: the whole tensor(s), with their own batch dimension;
  one input bare, several as an object. Answered as `{"outputs": ...}` the same way.
- `{"b64": "..."}` carries binary strings (images) for DT_STRING inputs, and is written
  for DT_STRING outputs whose name ends in `_bytes`.
- NaN and infinities are read and written as `NaN`, `Infinity`, `-Infinity` (as
  TensorFlow Serving's encoder does; Python's `json` reads them, strict parsers do not).
- Float32 outputs are written in their shortest round-tripping form (0.2, not
  0.20000000298023224), as TensorFlow Serving does.

Every malformed body raises `RequestError` (HTTP 400) with a message naming what was wrong
and what was expected; nothing here touches a model.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from typing import Any, Mapping

import numpy as np


# gRPC status codes of the HTTP statuses the server answers with (TensorFlow Serving's
# mapping, `tensorflow_serving/model_servers/http_rest_api_handler.cc`, read backwards).
_GRPC_CODES = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 413: "RESOURCE_EXHAUSTED",
               503: "UNAVAILABLE"}


class RequestError(Exception):
  """A request the server answers with `{"error": message}` and `status` (400 unless
  said otherwise); over gRPC with `code` (a `grpc.StatusCode` name; by default the one
  TensorFlow Serving pairs with `status`)."""

  def __init__(self, message: str, status: int = 400, code: str | None = None):
    super().__init__(message)
    self.message = message
    self.status = status
    self.code = code or _GRPC_CODES.get(status, "INVALID_ARGUMENT")


@dataclasses.dataclass(frozen=True)
class TensorSpec:
  """What a signature input or output is: its TensorFlow dtype name (`DT_UINT8`), its
  numpy dtype (`object` for DT_STRING) and its shape (`None` for an unknown dimension)."""
  dtype_name: str
  dtype: np.dtype
  shape: tuple | None  # None: unknown rank.

  def shape_text(self) -> str:
    if self.shape is None:
      return "[?]"
    return "[" + ",".join("-1" if d is None else str(d) for d in self.shape) + "]"


# TensorFlow's names for the dtypes the JSON format carries.
DTYPES = {
    "DT_FLOAT": np.dtype(np.float32), "DT_DOUBLE": np.dtype(np.float64),
    "DT_HALF": np.dtype(np.float16),
    "DT_INT8": np.dtype(np.int8), "DT_INT16": np.dtype(np.int16),
    "DT_INT32": np.dtype(np.int32), "DT_INT64": np.dtype(np.int64),
    "DT_UINT8": np.dtype(np.uint8), "DT_UINT16": np.dtype(np.uint16),
    "DT_UINT32": np.dtype(np.uint32), "DT_UINT64": np.dtype(np.uint64),
    "DT_BOOL": np.dtype(np.bool_), "DT_STRING": np.dtype(object),
}


def _short(value: Any, limit: int = 120) -> str:
  text = json.dumps(value, allow_nan=True) if not isinstance(value, str) else repr(value)
  return text if len(text) <= limit else text[:limit] + "..."


def _type_name(value: Any) -> str:
  """JSON type names as TensorFlow Serving's messages use them."""
  if value is None:
    return "Null"
  if isinstance(value, bool):
    return "True" if value else "False"
  if isinstance(value, (int, float)):
    return "Number"
  if isinstance(value, str):
    return "String"
  if isinstance(value, list):
    return "Array"
  return "Object"


def is_b64(value: Any) -> bool:
  return (isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str))


def _strings(value: Any, name: str) -> np.ndarray:
  """A nested list of strings / {"b64": ...} objects -> a numpy array of bytes objects."""

  def convert(v):
    if isinstance(v, list):
      return [convert(x) for x in v]
    if isinstance(v, str):
      return v.encode("utf-8")
    if is_b64(v):
      try:
        return base64.b64decode(v["b64"], validate=True)
      except (binascii.Error, ValueError):
        raise RequestError(f"Input `{name}`: Unable to base64 decode {_short(v)}.") from None
    raise RequestError(f"Input `{name}`: JSON Value: {_short(v)} Type: {_type_name(v)} is "
                       "not of expected type: string (a string or {\"b64\": \"...\"})")

  converted = convert(value)
  try:
    array = np.array(converted, dtype=object)
  except ValueError:
    raise RequestError(f"Input `{name}`: lists of different lengths at the same level "
                       "(a tensor must be rectangular).") from None
  if _ragged_objects(array):
    raise RequestError(f"Input `{name}`: lists of different lengths at the same level "
                       "(a tensor must be rectangular).")
  return array


def _ragged_objects(array: np.ndarray) -> bool:
  return array.dtype == object and any(isinstance(v, list) for v in array.reshape(-1))


def _numbers(value: Any, name: str, spec: TensorSpec) -> np.ndarray:
  """A nested list of JSON numbers -> a numpy array of the spec's dtype, checked."""
  if isinstance(value, (dict, str)) or value is None:
    hint = " ({\"b64\": ...} is for string inputs only)" if is_b64(value) else ""
    raise RequestError(f"Input `{name}`: JSON Value: {_short(value)} Type: "
                       f"{_type_name(value)} is not of expected type: "
                       f"{spec.dtype.name}{hint}")
  try:
    array = np.array(value)
  except (ValueError, OverflowError):
    raise RequestError(f"Input `{name}`: lists of different lengths at the same level, or "
                       "numbers out of range (a tensor must be rectangular).") from None
  kind = array.dtype.kind
  if array.size == 0 and kind != "O":
    return array.astype(spec.dtype)  # An empty list: the shape check says what is wrong.
  if kind == "O":  # Mixed types, ragged lists, objects, or integers beyond 64 bits.
    bad = [v for v in _leaves(value) if not _is_number(v)][:1]
    if bad:
      bad = bad[0]
      hint = " ({\"b64\": ...} is for string inputs only)" if is_b64(bad) else ""
      raise RequestError(f"Input `{name}`: JSON Value: {_short(bad)} Type: "
                         f"{_type_name(bad)} is not of expected type: {spec.dtype.name}"
                         f"{hint}")
    raise RequestError(f"Input `{name}`: lists of different lengths at the same level, or "
                       "integers beyond 64 bits (a tensor must be rectangular).")
  if kind in "USV":
    raise RequestError(f"Input `{name}`: strings where {spec.dtype.name} numbers were "
                       "expected.")
  target = spec.dtype
  if target.kind == "b":
    if kind != "b":
      raise RequestError(f"Input `{name}`: expected true/false values for a bool input; "
                         f"received {array.dtype.name} numbers.")
    return array
  if kind == "b" and array.size:
    raise RequestError(f"Input `{name}`: true/false where {target.name} numbers were "
                       "expected.")
  if target.kind in "iu":
    if kind == "f":
      raise RequestError(f"Input `{name}`: JSON Value: {_short(_first_fraction(array))} "
                         f"Type: Number is not of expected type: {target.name} (integers "
                         "only)")
    info = np.iinfo(target)
    if array.size and (array.min() < info.min or array.max() > info.max):
      raise RequestError(f"Input `{name}`: values must be integers in [{info.min}, "
                         f"{info.max}] for {target.name}; received values in "
                         f"[{array.min()}, {array.max()}].")
    return array.astype(target)
  # Floating point: integers and decimals both welcome; refuse what would overflow.
  with np.errstate(over="ignore", invalid="ignore"):
    converted = array.astype(target)
  source = array.astype(np.float64)
  if np.any(np.isfinite(source) & ~np.isfinite(converted)):
    raise RequestError(f"Input `{name}`: Cannot convert a value to {target.name} without "
                       f"loss of precision (largest {target.name} is {np.finfo(target).max}).")
  return converted


def _leaves(value):
  if isinstance(value, list):
    for v in value:
      yield from _leaves(v)
  else:
    yield value


def _is_number(v) -> bool:
  return isinstance(v, (int, float)) and not isinstance(v, bool)


def _first_fraction(array: np.ndarray):
  flat = array.reshape(-1)
  fractional = flat[flat != np.round(flat)]
  return (fractional if fractional.size else flat)[0].item()


def to_array(value: Any, name: str, spec: TensorSpec) -> np.ndarray:
  """One JSON value -> a numpy array of `spec.dtype` (shape not checked here)."""
  if spec.dtype_name not in DTYPES:
    raise RequestError(f"Input `{name}`: dtype {spec.dtype_name} cannot be given in JSON.")
  if spec.dtype == object:
    return _strings(value, name)
  return _numbers(value, name, spec)


def check_shape(array: np.ndarray, name: str, spec: TensorSpec) -> None:
  if spec.shape is None:
    return
  shape = array.shape
  if len(shape) != len(spec.shape) or any(
      want is not None and want != got for want, got in zip(spec.shape, shape)):
    raise RequestError(f"Input `{name}`: expected shape {spec.shape_text()} (-1: any size), "
                       f"received [{','.join(str(d) for d in shape)}].")


@dataclasses.dataclass
class PredictRequest:
  """A parsed predict body: which signature, the input arrays, and the format to answer in
  ("row": `predictions`, "columnar": `outputs`)."""
  signature_name: str
  inputs: dict
  format: str

  @property
  def rows(self) -> int:
    if not self.inputs:
      return 0
    first = next(iter(self.inputs.values()))
    return first.shape[0] if first.ndim else 1


def parse_body(body: bytes) -> dict:
  """The request body as a JSON object, or a `RequestError` saying why it is not one."""
  if not body:
    raise RequestError("JSON Parse error: The document is empty")
  try:
    doc = json.loads(body)
  except UnicodeDecodeError:
    raise RequestError("JSON Parse error: the body is not UTF-8 text.") from None
  except json.JSONDecodeError as e:
    raise RequestError(f"JSON Parse error: {e.msg} at offset: {e.pos}") from None
  except RecursionError:
    raise RequestError("JSON Parse error: nested too deeply.") from None
  if not isinstance(doc, dict):
    raise RequestError(f"JSON Value: {_short(doc)} Is not object")
  return doc


def signature_name(doc: dict) -> str:
  name = doc.get("signature_name", "")
  if not isinstance(name, str):
    raise RequestError(f"JSON Value: {_short(name)} not formatted correctly. "
                       "'signature_name' key must be a string value.")
  return name or "serving_default"


def parse_predict(doc: dict, input_specs: Mapping[str, TensorSpec]) -> PredictRequest:
  """A predict body (already a JSON object) against the signature's inputs -> arrays.

  Raises `RequestError` for: both or neither of `instances`/`inputs`, an empty or non-list
  `instances`, missing or unknown input names, wrong types (a float for an integer input,
  `b64` for a number), ragged lists, and shapes the signature does not accept.
  """
  name = signature_name(doc)
  has_rows, has_columns = "instances" in doc, "inputs" in doc
  if has_rows and has_columns:
    raise RequestError("Not formatted correctly: expecting only one of 'inputs' or "
                       "'instances' keys to exist.")
  if not has_rows and not has_columns:
    raise RequestError("Missing 'inputs' or 'instances' key")
  if has_rows:
    inputs, fmt = _rows(doc["instances"], input_specs), "row"
  else:
    inputs, fmt = _columns(doc["inputs"], input_specs), "columnar"
  for key, array in inputs.items():
    check_shape(array, key, input_specs[key])
  sizes = {key: a.shape[0] if a.ndim else None for key, a in inputs.items()}
  if len(set(sizes.values())) > 1:
    raise RequestError(f"Inputs must have the same batch size (first dimension); received "
                       f"{sizes}.")
  return PredictRequest(name, inputs, fmt)


def _rows(instances, specs) -> dict:
  if not isinstance(instances, list):
    raise RequestError("Expecting 'instances' to be an list/array")
  if not instances:
    raise RequestError("No values in 'instances' array")
  names = sorted(specs)
  first = instances[0]
  objects = isinstance(first, dict) and not is_b64(first)
  if not objects and len(names) > 1:
    raise RequestError("instances is a plain list, but expecting list of objects as "
                       f"multiple input tensors required: {', '.join(names)}")
  if not objects:
    name = names[0]
    if any(isinstance(e, dict) and not is_b64(e) for e in instances):
      index = next(i for i, e in enumerate(instances) if isinstance(e, dict) and not is_b64(e))
      raise RequestError(f"Expecting value/list but got object at item {index} of input list")
    return {name: to_array(instances, name, specs[name])}
  columns = {n: [] for n in names}
  for i, element in enumerate(instances):
    if not isinstance(element, dict) or is_b64(element):
      raise RequestError(f"Expecting object but got list at item {i} of input list")
    if set(element) != set(names):
      raise RequestError(f"Failed to process element: {i} of 'instances' list. JSON object "
                         f"keys must be equal to: {','.join(names)} (received "
                         f"{','.join(sorted(map(str, element)))})")
    for n in names:
      columns[n].append(element[n])
  return {n: to_array(values, n, specs[n]) for n, values in columns.items()}


def _columns(value, specs) -> dict:
  names = sorted(specs)
  if not isinstance(value, dict) or is_b64(value):
    if len(names) > 1:
      raise RequestError("inputs is a plain value/list, but expecting an object as multiple "
                         f"input tensors required: {', '.join(names)}")
    return {names[0]: to_array(value, names[0], specs[names[0]])}
  out = {}
  for n in names:
    if n not in value:
      raise RequestError(f"Missing named input: {n} in 'inputs' object.")
    out[n] = to_array(value[n], n, specs[n])
  return out


def _jsonable(name: str, array: np.ndarray):
  """One output array -> nested lists of JSON-ready Python values."""
  if array.dtype == object or array.dtype.kind == "S":
    if name.endswith("_bytes"):
      convert = lambda b: {"b64": base64.b64encode(bytes(b)).decode("ascii")}  # noqa: E731
    else:
      convert = lambda b: bytes(b).decode("utf-8", "replace")  # noqa: E731
    flat = [convert(b) for b in array.reshape(-1)]
    return np.array(flat, dtype=object).reshape(array.shape).tolist() if array.ndim else flat[0]
  if array.dtype in (np.float32, np.float16):
    # Shortest decimal that reads back as the same float32, as TensorFlow Serving writes.
    return array.astype(str).astype(np.float64).tolist()
  return array.tolist()


def encode_outputs(outputs: Mapping[str, np.ndarray], fmt: str) -> dict:
  """Model outputs -> the response object of the request's format."""
  names = sorted(outputs)
  if fmt == "columnar":
    if len(names) == 1:
      return {"outputs": _jsonable(names[0], outputs[names[0]])}
    return {"outputs": {n: _jsonable(n, outputs[n]) for n in names}}
  columns = {n: _jsonable(n, outputs[n]) for n in names}
  if len(names) == 1:
    return {"predictions": columns[names[0]]}
  rows = len(columns[names[0]])
  return {"predictions": [{n: columns[n][i] for n in names} for i in range(rows)]}


def dumps(obj) -> bytes:
  """JSON bytes; NaN and infinities as TensorFlow Serving writes them."""
  return json.dumps(obj, allow_nan=True, separators=(",", ":")).encode("utf-8")
