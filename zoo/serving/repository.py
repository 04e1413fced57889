"""The models a server serves: every version of every SavedModel under one base path.

  repository = Repository.load("saved_models")       # once, at start
  servable = repository.resolve("mnist_cnn")         # newest version
  servable = repository.resolve("mnist_cnn", version=2)
  servable.run("serving_default", {"images": uint8_array})   # -> {"classes": ..., ...}

The layout is TensorFlow Serving's: `<base>/<model name>/<integer version>/saved_model.pb`.
Everything is read at start; a request only ever names a model, a version or a label,
which are looked up in dicts built here, so no request reaches the filesystem. Signatures
and their metadata come from each SavedModel itself: no task code is needed to serve it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from typing import Mapping

import numpy as np

from zoo import errors
from zoo.serving.json_tensor import DTYPES, RequestError, TensorSpec

log = logging.getLogger("zoo")

# Signatures TensorFlow writes for itself; listed in metadata (as TensorFlow Serving does)
# but never callable.
INTERNAL_SIGNATURES = ("__saved_model_init_op",)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclasses.dataclass
class Signature:
  """One callable signature: input/output specs and whether requests can be batched
  together (every input and output has a leading batch dimension of any size)."""
  name: str
  inputs: dict
  outputs: dict
  function: object = dataclasses.field(repr=False)

  @property
  def batchable(self) -> bool:
    specs = list(self.inputs.values()) + list(self.outputs.values())
    return bool(specs) and all(s.shape and s.shape[0] is None for s in specs)


@dataclasses.dataclass
class Servable:
  """One loaded version of a model."""
  name: str
  version: int
  path: str
  signatures: dict
  signature_def: dict  # TensorFlow Serving's JSON of the SavedModel's SignatureDefMap.

  def signature(self, name: str) -> Signature:
    if name not in self.signatures:
      raise RequestError(f"Serving signature name: \"{name}\" not found in signature def "
                         f"(model {self.name} version {self.version} has: "
                         f"{', '.join(sorted(self.signatures))})")
    return self.signatures[name]

  def run(self, signature: str, inputs: Mapping[str, np.ndarray]) -> dict:
    """Calls the signature on numpy inputs; numpy outputs by name. TensorFlow's
    InvalidArgumentError (e.g. undecodable image bytes) becomes a `RequestError`."""
    import tensorflow as tf
    fn = self.signature(signature).function
    try:
      outputs = fn(**{k: tf.constant(v) for k, v in inputs.items()})
    except tf.errors.InvalidArgumentError as e:
      raise RequestError(_first_line(e.message)) from None
    return {k: v.numpy() for k, v in outputs.items()}


def _first_line(message: str) -> str:
  lines = [line for line in str(message).splitlines() if line.strip()]
  return lines[0].strip() if lines else "Invalid argument"


def _spec(info) -> TensorSpec:
  from tensorflow.core.framework import types_pb2
  dtype_name = types_pb2.DataType.Name(info.dtype)
  shape = None if info.tensor_shape.unknown_rank else tuple(
      None if d.size < 0 else int(d.size) for d in info.tensor_shape.dim)
  return TensorSpec(dtype_name, DTYPES.get(dtype_name, np.dtype(object)), shape)


def _signature_defs(version_dir: str):
  from tensorflow.core.protobuf import saved_model_pb2
  proto = saved_model_pb2.SavedModel()
  with open(os.path.join(version_dir, "saved_model.pb"), "rb") as f:
    proto.ParseFromString(f.read())
  return proto.meta_graphs[0].signature_def


def load_servable(name: str, version: int, path: str) -> Servable:
  import tensorflow as tf
  from google.protobuf import json_format
  defs = _signature_defs(path)
  loaded = tf.saved_model.load(path)
  signatures = {}
  for key, sig in defs.items():
    if key in INTERNAL_SIGNATURES or key not in loaded.signatures:
      continue
    signatures[key] = Signature(
        key, {k: _spec(v) for k, v in sig.inputs.items()},
        {k: _spec(v) for k, v in sig.outputs.items()}, loaded.signatures[key])
  signature_def = {"signature_def": {
      key: json_format.MessageToDict(sig, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)
      for key, sig in defs.items()}}
  servable = Servable(name, version, path, signatures, signature_def)
  servable._loaded = loaded  # Keeps the functions' variables alive.
  return servable


@dataclasses.dataclass
class VersionState:
  version: int
  servable: Servable | None
  error: str = ""

  def status(self) -> dict:
    """One `model_version_status` entry in TensorFlow Serving's JSON."""
    if self.servable is not None:
      return {"version": str(self.version), "state": "AVAILABLE",
              "status": {"error_code": "OK", "error_message": ""}}
    return {"version": str(self.version), "state": "END",
            "status": {"error_code": "UNKNOWN", "error_message": self.error}}


class Repository:
  """Every version of every model under a base path, loaded once."""

  def __init__(self, models: dict, labels: dict | None = None):
    self.models = models  # name -> {version: VersionState}
    self.labels = labels or {}  # name -> {label: version}

  @classmethod
  def load(cls, base_path: str, labels: Mapping[str, Mapping[str, int]] | None = None,
           only: list | None = None) -> "Repository":
    """Loads `<base_path>/<name>/<version>/` for every model (or the names in `only`).

    A version that fails to load is reported by the status API (state END with its
    error) while the others serve. Raises `FileNotFoundError` if nothing loads.
    """
    if not os.path.isdir(base_path):
      raise errors.NotFoundError(
          f"Invalid value for `model_base_path`: {base_path!r} is not a directory.")
    models = {}
    for name in sorted(os.listdir(base_path)):
      model_dir = os.path.join(base_path, name)
      if not os.path.isdir(model_dir) or not _NAME.match(name) or (only and name not in only):
        continue
      versions = {}
      for entry in sorted(os.listdir(model_dir)):
        path = os.path.join(model_dir, entry)
        if not entry.isdigit() or not os.path.isfile(os.path.join(path, "saved_model.pb")):
          continue
        version = int(entry)
        try:
          versions[version] = VersionState(version, load_servable(name, version, path))
          log.info("Loaded %s version %d from %s.", name, version, path)
        except Exception as e:  # A broken version must not stop the others serving.
          log.error("Could not load %s version %d from %s: %s", name, version, path, e)
          versions[version] = VersionState(version, None, f"{type(e).__name__}: {e}")
      if versions:
        models[name] = versions
    if only:
      missing = sorted(set(only) - set(models))
      if missing:
        raise errors.NotFoundError(f"Invalid value for `models`: {missing} not found under "
                                   f"{base_path!r} (found: {sorted(models)}).")
    if not any(v.servable for versions in models.values() for v in versions.values()):
      raise errors.NotFoundError(f"No SavedModel loaded from {base_path!r}: expected "
                                 "<name>/<version>/saved_model.pb directories.")
    labels = {k: dict(v) for k, v in (labels or {}).items()}
    for name, assigned in labels.items():
      for label, version in assigned.items():
        state = models.get(name, {}).get(version)
        if state is None or state.servable is None:
          raise errors.InvalidValueError(
              f"Invalid value for `version_labels`: {name}/{label}={version} "
              "names a version that is not loaded.")
    return cls(models, labels)

  def _versions(self, name: str) -> dict:
    if name not in self.models:
      raise RequestError(f"Servable not found for request: Latest({name})", status=404)
    return self.models[name]

  def _label_version(self, name: str, label: str) -> int:
    self._versions(name)
    if label not in self.labels.get(name, {}):
      raise RequestError(f"Unrecognized servable version label: {label}")
    return self.labels[name][label]

  def resolve(self, name: str, version: int | None = None, label: str | None = None
              ) -> Servable:
    """The servable a request names; the newest available version by default."""
    versions = self._versions(name)
    if label is not None:
      version = self._label_version(name, label)
    if version is None:
      available = [v for v, s in versions.items() if s.servable is not None]
      if not available:
        raise RequestError(f"Servable not found for request: Latest({name})", status=404)
      return versions[max(available)].servable
    state = versions.get(version)
    if state is None or state.servable is None:
      raise RequestError(f"Servable not found for request: Specific({name}, {version})",
                         status=404)
    return state.servable

  def status(self, name: str, version: int | None = None, label: str | None = None) -> dict:
    """TensorFlow Serving's GetModelStatus response as JSON."""
    versions = self._versions(name)
    if label is not None:
      version = self._label_version(name, label)
    if version is None:
      states = [versions[v] for v in sorted(versions)]
    elif version in versions:
      states = [versions[version]]
    else:
      raise RequestError(f"Could not find version {version} of model {name}", status=404)
    return {"model_version_status": [s.status() for s in states]}

  def metadata(self, name: str, version: int | None = None, label: str | None = None) -> dict:
    """TensorFlow Serving's GetModelMetadata response (signature_def only) as JSON."""
    servable = self.resolve(name, version, label)
    return {"model_spec": {"name": name, "signature_name": "",
                           "version": str(servable.version)},
            "metadata": {"signature_def": servable.signature_def}}

  def servables(self):
    for versions in self.models.values():
      for state in versions.values():
        if state.servable is not None:
          yield state.servable
