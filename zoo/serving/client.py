"""Call a served model from Python: TensorFlow Serving's REST API over `urllib`, or its
gRPC API with the official `tensorflow-serving-api` stubs; the URL picks the protocol.

  model = zoo.connect("http://127.0.0.1:8501", "mnist_cnn")     # newest version
  model = zoo.connect("grpc://127.0.0.1:8500", "mnist_cnn")     # the same, over gRPC
  model.status()                         # {"model_version_status": [...]}
  model.signatures                       # {"serving_default", "features", ...}
  out = model.run(images=uint8_array)    # numpy arrays by output name, as a backend's run
  model.predict(instances=[...])         # the raw JSON answer (REST only)

  # The same task front `zoo.load` gives, over the server, with the export's model card:
  classifier = zoo.connect(url, "mnist_cnn", card="saved_models/mnist_cnn/3")
  classifier.predict(images)["labels"]

Works against `scripts/serve.py` and against TensorFlow Serving itself (it uses only the
status, metadata and predict calls). Errors come back as `ServingError` with the HTTP
status or the gRPC status code, and the server's message.
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
  """The server answered with an error: `status` (the HTTP code, or the gRPC status code's
  name such as "NOT_FOUND") and its `message`."""

  def __init__(self, status, message: str, url: str):
    protocol = "HTTP" if isinstance(status, int) else "gRPC"
    super().__init__(f"{protocol} {status} from {url}: {message}")
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


class GrpcModel(RemoteModel):
  """One model of a TensorFlow Serving gRPC server (`grpc://host:port`), with
  `RemoteModel`'s methods; `status()` and `metadata()` answer in the REST API's JSON (the
  proto's JSON mapping), so both protocols read the same."""

  kind = "grpc"

  def __init__(self, url: str, name: str, version: int | None = None,
               label: str | None = None, timeout: float = 30.0):
    if version is not None and label is not None:
      raise errors.InvalidValueError("Invalid arguments: give `version` or `label`, not both.")
    if not url.startswith("grpc://") or not url[len("grpc://"):].strip("/"):
      raise errors.InvalidValueError(
          f"Invalid value for `url`: expected grpc://host:port, received {url!r}.")
    try:  # The gRPC client is optional: only apps that use it need its packages.
      import grpc
      from tensorflow_serving.apis import model_service_pb2_grpc
      from tensorflow_serving.apis import prediction_service_pb2_grpc
    except ImportError as e:
      raise errors.ZooError(f"grpc:// needs {e.name}: pip install tensorflow-serving-api "
                            "grpcio (or the zoo's [serve] extra).") from None
    self.name, self.version_pin, self.label, self.timeout = name, version, label, timeout
    self.path = f"{url.rstrip('/')}/{name}"
    self._grpc = grpc
    # TensorFlow Serving's own limits: a batch of photos is over gRPC's 4 MB default.
    self._channel = grpc.insecure_channel(url[len("grpc://"):].strip("/"), options=[
        ("grpc.max_receive_message_length", 2 ** 31 - 1),
        ("grpc.max_send_message_length", 2 ** 31 - 1)])
    self._predictions = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
    self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)
    self._metadata = None

  def _spec(self, spec, signature: str = "") -> None:
    spec.name = self.name
    if self.version_pin is not None:
      spec.version.value = int(self.version_pin)
    elif self.label is not None:
      spec.version_label = self.label
    if signature:
      spec.signature_name = signature

  def _rpc(self, method, request):
    try:
      return method(request, self.timeout)
    except self._grpc.RpcError as e:
      raise ServingError(e.code().name, e.details(), self.path) from None

  def status(self) -> dict:
    from google.protobuf import json_format
    from tensorflow_serving.apis import get_model_status_pb2
    request = get_model_status_pb2.GetModelStatusRequest()
    self._spec(request.model_spec)
    return json_format.MessageToDict(self._rpc(self._models.GetModelStatus, request),
                                     preserving_proto_field_name=True)

  def metadata(self) -> dict:
    if self._metadata is None:
      from google.protobuf import json_format
      from tensorflow_serving.apis import get_model_metadata_pb2
      request = get_model_metadata_pb2.GetModelMetadataRequest()
      self._spec(request.model_spec)
      request.metadata_field.append("signature_def")
      response = self._rpc(self._predictions.GetModelMetadata, request)
      defs = get_model_metadata_pb2.SignatureDefMap()
      response.metadata["signature_def"].Unpack(defs)
      self._metadata = {
          "model_spec": {"name": self.name, "signature_name": "",
                         "version": str(response.model_spec.version.value)},
          "metadata": {"signature_def": json_format.MessageToDict(
              defs, preserving_proto_field_name=True)}}
    return self._metadata

  def predict(self, instances=None, *, inputs=None, signature_name=None):
    raise errors.InvalidValueError("`predict` sends REST's JSON; over gRPC use `run`.")

  def run(self, signature: str = "serving_default", **arrays) -> dict:
    """numpy inputs by name (cast to the signature's dtypes) -> numpy outputs by name."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2
    definition = self._signature_defs().get(signature)
    if definition is None:
      raise errors.InvalidValueError(
          f"Invalid value for `signature`: {signature!r}; {self.name} has "
          f"{sorted(self.signatures)}.")
    request = predict_pb2.PredictRequest()
    self._spec(request.model_spec, signature)
    for key, value in arrays.items():
      spec = definition["inputs"].get(key)
      dtype = DTYPES.get(spec["dtype"]) if spec else None
      array = np.asarray(value, dtype=dtype if dtype not in (None, object) else None)
      request.inputs[key].CopyFrom(tf.make_tensor_proto(array))
    response = self._rpc(self._predictions.Predict, request)
    out = {}
    for key, proto in response.outputs.items():
      array = tf.make_ndarray(proto)
      out[key] = array.astype(object) if array.dtype.kind == "S" else array
    return out


def connect(url: str, name: str, version: int | None = None, label: str | None = None,
            card=None, timeout: float = 30.0):
  """A served model: a `RemoteModel` (REST) or `GrpcModel` (gRPC), or with `card` the
  task's front over it.

  Args:
    url: the server, `http://host:port` (REST) or `grpc://host:port` (gRPC).
    name: the model's name on the server.
    version: pin a version number (default: the newest the server has).
    label: pin a version label instead (TensorFlow Serving's `version_labels`).
    card: the export's model card (a dict, a `model_card.json` path, or the version
      directory holding it) to get the same front `zoo.load` returns, with its labels,
      checks and helpers, running on the server.
    timeout: seconds to wait for each answer.
  """
  remote = GrpcModel if url.startswith("grpc://") else RemoteModel
  model = remote(url, name, version=version, label=label, timeout=timeout)
  if card is None:
    return model
  if isinstance(card, (str, os.PathLike)):
    card = runtime.read_card(str(card)) if os.path.isdir(card) else json.load(open(card))
  return tasks.for_card(card).front(model, card)
