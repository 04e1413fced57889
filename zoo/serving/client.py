"""Call a served model from Python: TensorFlow Serving's REST API over `urllib`.

  model = zoo.connect("http://127.0.0.1:8501", "mnist_cnn")     # newest version
  model.status()                         # {"model_version_status": [...]}
  model.signatures                       # {"serving_default", "features", ...}
  out = model.run(images=uint8_array)    # numpy arrays by output name, as a backend's run
  model.predict(instances=[...])         # the raw JSON answer

  # The same task front `zoo.load` gives, over the server, with the export's model card:
  classifier = zoo.connect(url, "mnist_cnn", card="saved_models/mnist_cnn/3")
  classifier.predict(images)["labels"]

Works against `scripts/serve.py` and against TensorFlow Serving itself (it uses only the
status, metadata and predict endpoints). Errors come back as `ServingError` with the HTTP
status and the server's message.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.parse
import urllib.request

import numpy as np

from zoo import errors, runtime, tasks
from zoo.serving.json_tensor import DTYPES


class ServingError(errors.ZooError):
  """The server answered with an error: `status` (HTTP code) and its `message`."""

  def __init__(self, status: int, message: str, url: str):
    super().__init__(f"HTTP {status} from {url}: {message}")
    self.status = status
    self.message = message


class RemoteModel:
  """One model (a version, a label, or the newest) of a TensorFlow Serving REST server.

  It is also a predictor backend (`kind`, `path`, `signatures`, `run`), so a task front
  (`zoo.tasks.classification.Classifier`, ...) can sit on it; see `connect`.
  """

  kind = "rest"

  def __init__(self, url: str, name: str, version: int | None = None,
               label: str | None = None, timeout: float = 30.0):
    if version is not None and label is not None:
      raise errors.InvalidValueError("Invalid arguments: give `version` or `label`, not both.")
    base = url.rstrip("/")
    if not base.startswith(("http://", "https://")):
      raise errors.InvalidValueError(
          f"Invalid value for `url`: expected http(s)://host:port, received "
          f"{url!r}.")
    self.name = name
    self.path = f"{base}/v1/models/{urllib.parse.quote(name, safe='')}"
    if version is not None:
      self.path += f"/versions/{int(version)}"
    elif label is not None:
      self.path += f"/labels/{urllib.parse.quote(label, safe='')}"
    self.timeout = timeout
    self._metadata = None

  def _call(self, url: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode("utf-8")
    request = urllib.request.Request(url, data=data,
                                     headers={"Content-Type": "application/json"})
    try:
      with urllib.request.urlopen(request, timeout=self.timeout) as response:
        return json.loads(response.read())
    except urllib.error.HTTPError as e:
      text = e.read().decode("utf-8", "replace")
      try:
        message = json.loads(text).get("error", text)
      except (ValueError, AttributeError):
        message = text
      raise ServingError(e.code, message, url) from None

  def status(self) -> dict:
    return self._call(self.path)

  def metadata(self) -> dict:
    if self._metadata is None:
      self._metadata = self._call(self.path + "/metadata")
    return self._metadata

  @property
  def version(self) -> int:
    """The version the server resolves this model to (the newest unless pinned)."""
    return int(self.metadata()["model_spec"]["version"])

  def _signature_defs(self) -> dict:
    return self.metadata()["metadata"]["signature_def"]["signature_def"]

  @property
  def signatures(self) -> set:
    return {k for k in self._signature_defs() if not k.startswith("__")}

  def predict(self, instances=None, *, inputs=None, signature_name: str | None = None
              ) -> dict:
    """The raw predict call: row (`instances`) or columnar (`inputs`) JSON in, JSON out."""
    if (instances is None) == (inputs is None):
      raise errors.InvalidValueError(
          "Invalid arguments: give exactly one of `instances` or `inputs`.")
    body = {"instances": instances} if instances is not None else {"inputs": inputs}
    if signature_name:
      body["signature_name"] = signature_name
    return self._call(self.path + ":predict", body)

  def run(self, signature: str = "serving_default", **arrays) -> dict:
    """numpy inputs by name -> numpy outputs by name (columnar request), typed as the
    signature's outputs say; bytes inputs go as `{"b64": ...}`."""
    definition = self._signature_defs().get(signature)
    if definition is None:
      raise errors.InvalidValueError(
          f"Invalid value for `signature`: {signature!r}; {self.name} has "
          f"{sorted(self.signatures)}.")
    inputs = {k: _to_json(np.asarray(v)) for k, v in arrays.items()}
    answer = self.predict(inputs=inputs, signature_name=signature)["outputs"]
    outputs = definition["outputs"]
    if len(outputs) == 1:
      answer = {next(iter(outputs)): answer}
    return {k: _from_json(answer[k], outputs[k]["dtype"]) for k in outputs}


def _to_json(array: np.ndarray):
  if array.dtype == object or array.dtype.kind == "S":
    flat = [{"b64": base64.b64encode(bytes(b)).decode("ascii")} for b in array.reshape(-1)]
    return np.array(flat, dtype=object).reshape(array.shape).tolist()
  return array.tolist()


def _from_json(value, dtype_name: str) -> np.ndarray:
  dtype = DTYPES.get(dtype_name, np.dtype(object))
  if dtype == object:
    def convert(v):
      if isinstance(v, list):
        return [convert(x) for x in v]
      if isinstance(v, dict) and "b64" in v:
        return base64.b64decode(v["b64"])
      return str(v).encode("utf-8")
    return np.array(convert(value), dtype=object)
  return np.asarray(value, dtype=dtype)


def connect(url: str, name: str, version: int | None = None, label: str | None = None,
            card=None, timeout: float = 30.0):
  """A served model: a `RemoteModel`, or with `card` the task's front over it.

  Args:
    url: the server, `http://host:port`.
    name: the model's name on the server.
    version / label: pin a version (default: the newest the server has).
    card: the export's model card (a dict, a `model_card.json` path, or the version
      directory holding it) to get the same front `zoo.load` returns, with its labels,
      checks and helpers, running on the server.
  """
  model = RemoteModel(url, name, version=version, label=label, timeout=timeout)
  if card is None:
    return model
  if isinstance(card, (str, os.PathLike)):
    card = runtime.read_card(str(card)) if os.path.isdir(card) else json.load(open(card))
  return tasks.for_card(card).front(model, card)
