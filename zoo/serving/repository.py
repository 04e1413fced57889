"""The models a server serves, kept in step with their folders as TensorFlow Serving does.

  repository = Repository.load([ModelSource("mnist_cnn", "saved_models/mnist_cnn")])
  repository.watch(poll_wait_s=1.0)                  # new versions load in the background
  servable = repository.resolve("mnist_cnn")         # newest version
  servable = repository.resolve("mnist_cnn", version=2)
  servable.run("serving_default", {"images": uint8_array})   # -> {"classes": ..., ...}

The layout is TensorFlow Serving's: `<model base path>/<integer version>/saved_model.pb`.
Each model has a version policy (`VersionPolicy`, TensorFlow Serving's
`model_version_policy`: the latest N, all, or specific versions; default the latest one).
`poll()` lists each model's folder: a version the policy wants and that holds
`saved_model.pb` is loaded (a folder still being copied either lacks `saved_model.pb`, or
fails to load and is tried again once its files change), then served; a version the
policy no longer wants is unloaded once a wanted one serves (TensorFlow Serving's
availability-preserving default), or at once if its folder is gone. A version that fails
to load is reported by the status API (state END with its error) and the versions already
serving keep serving.
Requests only look names up in dicts that `poll()` replaces whole (never edits), so a
request never reaches the filesystem, and a request running on a version being unloaded
finishes on it. Signatures and their metadata come from each SavedModel itself: no task
code is needed to serve it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import threading
import time
from typing import Callable, Mapping, Optional, Sequence

import numpy as np

from zoo import errors, runtime
from zoo.data import images
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
  signature_protos: dict = dataclasses.field(default_factory=dict, repr=False)  # The same.

  def signature(self, name: str) -> Signature:
    if name not in self.signatures:
      raise RequestError(f"Serving signature name: \"{name}\" not found in signature def "
                         f"(model {self.name} version {self.version} has: "
                         f"{', '.join(sorted(self.signatures))})", code="FAILED_PRECONDITION")
    return self.signatures[name]

  def check_request(self, inputs: Mapping[str, np.ndarray]) -> None:
    """One request's images held to zoo.data.images' budgets from their headers, before
    any is decoded (and before requests are batched together): each image's pixels and
    bytes (exports made before their graphs checked them are protected too) and the
    request's pixels in all (its decoding time). Raises a `RequestError` in one line."""
    if "image_bytes" not in inputs:
      return
    import tensorflow as tf
    try:
      batch = tf.constant(np.ravel(inputs["image_bytes"]))
      for item in batch:
        images.check_image_bytes(item)
      images.check_request(batch)
    except tf.errors.InvalidArgumentError as e:
      raise RequestError(_first_line(e.message)) from None

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
  """The line of a TensorFlow error saying what was wrong (e.g. "Unknown image file
  format. One of JPEG, PNG, ... required."), not its "Graph execution error:" header,
  node names or stack-trace placeholders."""
  budget = runtime.budget_line(message)  # An image over zoo.data.images' budgets.
  if budget:
    return budget
  noise = ("Graph execution error", "Detected at node", "<stack traces unavailable>")
  lines = [line.strip() for line in str(message).splitlines() if line.strip()]
  reasons = [line for line in lines
             if not line.startswith(noise) and not line.startswith("[[")]
  if reasons:
    return reasons[0]
  return lines[0] if lines else "Invalid argument"


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
  servable = Servable(name, version, path, signatures, signature_def, dict(defs))
  servable._loaded = loaded  # Keeps the functions' variables alive.
  return servable


@dataclasses.dataclass(frozen=True)
class VersionPolicy:
  """Which versions of a model to serve (TensorFlow Serving's `model_version_policy`).

  Attributes:
    kind: "latest" (the `num_versions` highest), "all", or "specific" (`versions`).
  """
  kind: str = "latest"
  num_versions: int = 1
  versions: tuple = ()

  def __post_init__(self):
    if self.kind not in ("latest", "all", "specific"):
      raise errors.InvalidValueError(f"Invalid value for the version policy: {self.kind!r}; "
                                     "expected 'latest', 'all' or 'specific'.")
    if self.kind == "latest" and self.num_versions < 1:
      raise errors.InvalidValueError("Invalid value for `latest.num_versions`: expected at "
                                     f"least 1. Received: {self.num_versions}")
    if self.kind == "specific" and not self.versions:
      raise errors.InvalidValueError("Invalid value for `specific.versions`: expected at "
                                     "least one version.")

  def select(self, found: Sequence[int]) -> set:
    """The versions to serve among the `found` version folders."""
    if self.kind == "all":
      return set(found)
    if self.kind == "specific":
      return set(found) & set(self.versions)
    return set(sorted(found)[-self.num_versions:])


@dataclasses.dataclass(frozen=True)
class ModelSource:
  """One served model: its name, its folder of versions, its policy and version labels."""
  name: str
  base_path: str
  policy: VersionPolicy = VersionPolicy()
  labels: Mapping[str, int] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    if not _NAME.match(self.name):
      raise errors.InvalidValueError(
          f"Invalid value for the model name: {self.name!r}; expected letters, digits, "
          "'_', '.', '-'.")


def sources_under(root: str, only: Optional[Sequence[str]] = None,
                  policy: VersionPolicy = VersionPolicy(),
                  labels: Optional[Mapping[str, Mapping[str, int]]] = None) -> list:
  """A `ModelSource` for every model folder under `root` (`<root>/<name>/<version>/`), or
  for the names in `only`."""
  if not os.path.isdir(root):
    raise errors.NotFoundError(
        f"Invalid value for `model_base_path`: {root!r} is not a directory.")
  names = sorted(n for n in os.listdir(root)
                 if os.path.isdir(os.path.join(root, n)) and _NAME.match(n))
  if only:
    missing = sorted(set(only) - set(names))
    if missing:
      raise errors.NotFoundError(f"Invalid value for `models`: {missing} not found under "
                                 f"{root!r} (found: {names}).")
    names = [n for n in names if n in only]
  labels = labels or {}
  unknown = sorted(set(labels) - set(names))
  if unknown:
    raise errors.InvalidValueError(f"Invalid value for `version_labels`: models {unknown} "
                                   f"are not served (served: {names}).")
  return [ModelSource(n, os.path.join(root, n), policy, dict(labels.get(n, {})))
          for n in names]


@dataclasses.dataclass
class VersionState:
  """One version of a model as the status API reports it: LOADING, AVAILABLE (with its
  servable) or END (unloaded, or failed to load with `error`)."""
  version: int
  servable: Servable | None = None
  state: str = "AVAILABLE"
  error: str = ""
  files: tuple = ()  # What the folder held when a failed load was tried.

  def status(self) -> dict:
    """One `model_version_status` entry in TensorFlow Serving's JSON."""
    code = "UNKNOWN" if self.error else "OK"
    return {"version": str(self.version), "state": self.state,
            "status": {"error_code": code, "error_message": self.error}}


def _version_folders(base_path: str) -> dict:
  """`{version: path}` of the integer folders holding `saved_model.pb`."""
  try:
    entries = os.listdir(base_path)
  except OSError:
    return {}
  found = {}
  for entry in entries:
    path = os.path.join(base_path, entry)
    if entry.isdigit() and os.path.isfile(os.path.join(path, "saved_model.pb")):
      found[int(entry)] = path
  return found


def _files(path: str) -> tuple:
  """What a version folder holds (names, sizes, mtimes): a failed load is tried again
  only once this changes (the copy was still going on)."""
  listed = []
  for root, _, names in os.walk(path):
    for n in names:
      try:
        st = os.stat(os.path.join(root, n))
      except OSError:
        continue
      listed.append((os.path.relpath(os.path.join(root, n), path), st.st_size,
                     st.st_mtime_ns))
  return tuple(sorted(listed))


class Repository:
  """The served models and their versions, kept in step with their folders by `poll`."""

  def __init__(self, sources: Sequence[ModelSource],
               on_load: Optional[Callable[[str, bool, float], None]] = None):
    """`on_load(path, ok, seconds)` is called after every load attempt (for metrics)."""
    self.sources = {s.name: s for s in sources}
    self.labels = {s.name: dict(s.labels) for s in sources}
    self.models = {s.name: {} for s in sources}  # name -> {version: VersionState}
    self.on_load = on_load
    self._lock = threading.Lock()  # One poll at a time.
    self._stop = threading.Event()
    self._watcher = None

  @classmethod
  def load(cls, sources: Sequence[ModelSource], on_load=None) -> "Repository":
    """A repository with every source polled once.

    Raises `NotFoundError` if nothing loaded; `InvalidValueError` if a version label
    names a version that is not loaded (TensorFlow Serving refuses such a config too).
    """
    if not sources:
      raise errors.NotFoundError("No model to serve.")
    repository = cls(sources, on_load)
    repository.poll()
    if not any(True for _ in repository.servables()):
      paths = ", ".join(repr(s.base_path) for s in sources)
      raise errors.NotFoundError(f"No SavedModel loaded from {paths}: expected "
                                 "<version>/saved_model.pb folders.")
    for name, assigned in repository.labels.items():
      for label, version in assigned.items():
        state = repository.models[name].get(version)
        if state is None or state.servable is None:
          raise errors.InvalidValueError(
              f"Invalid value for `version_labels`: {name}/{label}={version} "
              "names a version that is not loaded.")
    return repository

  def poll(self) -> None:
    """Brings every model in step with its folder once (loads run in this thread)."""
    with self._lock:
      for source in self.sources.values():
        self._poll_model(source)

  def _poll_model(self, source: ModelSource) -> None:
    found = _version_folders(source.base_path)
    wanted = source.policy.select(sorted(found))
    current = self.models[source.name]
    for version in sorted(wanted, reverse=True):  # Newest first: it serves soonest.
      state = current.get(version)
      if state is not None and state.state == "AVAILABLE":
        continue
      files = _files(found[version])
      if state is not None and state.error and state.files == files:
        continue  # Failed on these very files; try again once they change.
      current = self._load(source.name, version, found[version], files, current)
    # Then unload, preserving availability as TensorFlow Serving's default policy does: a
    # version no longer wanted goes once a wanted one serves (so a new version that fails
    # to load never takes the model down), or at once if its folder is gone. Requests
    # already running on it finish on their own reference to it.
    replaced = any(current[v].servable is not None for v in wanted)
    gone = [v for v, s in current.items() if v not in wanted and s.state != "END"
            and (replaced or v not in found)]
    if gone:
      current = {**current, **{v: VersionState(v, state="END") for v in gone}}
      self.models = {**self.models, source.name: current}
      for v in gone:
        log.info("Unloaded %s version %d.", source.name, v)

  def _load(self, name, version, path, files, current) -> dict:
    self.models = {**self.models, name: {**current, version: VersionState(
        version, state="LOADING")}}
    started = time.perf_counter()
    try:
      state = VersionState(version, load_servable(name, version, path))
      log.info("Loaded %s version %d from %s.", name, version, path)
    except Exception as e:  # A broken version must not stop the others serving.
      # One line (a damaged file's TensorFlow error is a page), printable, bounded.
      reason = "".join(c if c.isprintable() else "?" for c in _first_line(str(e)))[:200]
      log.error("Could not load %s version %d from %s: %s: %s", name, version, path,
                type(e).__name__, reason)
      state = VersionState(version, state="END", error=f"{type(e).__name__}: {reason}",
                           files=files)
    if self.on_load is not None:
      self.on_load(path, state.servable is not None, time.perf_counter() - started)
    current = {**current, version: state}
    self.models = {**self.models, name: current}
    return current

  def watch(self, poll_wait_s: float) -> None:
    """Polls every `poll_wait_s` seconds in a background thread until `stop()`."""
    def loop():
      while not self._stop.wait(poll_wait_s):
        try:
          self.poll()
        except Exception:  # noqa: BLE001 - logged; the next poll tries again.
          log.exception("Polling the model folders failed")
    self._watcher = threading.Thread(target=loop, name="model-poll", daemon=True)
    self._watcher.start()

  def stop(self) -> None:
    self._stop.set()
    if self._watcher is not None:
      self._watcher.join(timeout=60)

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

  def loaded(self) -> dict:
    """`{name: [versions being served]}`."""
    return {name: sorted(v for v, s in versions.items() if s.servable)
            for name, versions in self.models.items()}
