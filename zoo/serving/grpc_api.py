"""TensorFlow Serving's gRPC API over the same `Server` as the REST API.

  grpc_server = make_grpc_server(server)          # server: zoo.serving.app.Server
  grpc_server.add_insecure_port("127.0.0.1:8500")
  await grpc_server.start()

Services (the messages and stubs of the `tensorflow-serving-api` wheel, so its client,
as TensorFlow Serving's `example/mnist_client.py` writes it, works unchanged):

  tensorflow.serving.PredictionService
    Predict           TensorProto inputs -> TensorProto outputs; `model_spec.version` or
                      `version_label`, `signature_name` (default serving_default),
                      `output_filter`; the response's `model_spec` names the version
                      that answered. Shares the REST API's batcher per signature.
    GetModelMetadata  `metadata_field: "signature_def"` -> the SavedModel's SignatureDefMap.
    Classify, Regress, MultiInference
                      answered as TensorFlow Serving answers them for predict-only
                      signatures: INVALID_ARGUMENT naming the signature's method.
  tensorflow.serving.ModelService
    GetModelStatus    every version's state (LOADING, AVAILABLE, END with its error).
  grpc.health.v1.Health  SERVING while the server takes requests, NOT_SERVING when
                      it drains.

Status codes as TensorFlow Serving gives them: an unknown model or version NOT_FOUND
("Servable not found for request: ..."), an unknown signature FAILED_PRECONDITION,
anything wrong with the request's tensors INVALID_ARGUMENT, a full batching queue
UNAVAILABLE. A failure that is not the request's is INTERNAL, logged; the server goes on.
Message size limits are raised to 2 GiB as TensorFlow Serving raises them (gRPC's Python
default of 4 MB would refuse a batch of photos).
"""

from __future__ import annotations

import asyncio
import logging
import time

import grpc
import numpy as np
import tensorflow as tf
from grpc_health.v1 import health
from grpc_health.v1 import health_pb2
from grpc_health.v1 import health_pb2_grpc
from google.protobuf import json_format
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from zoo.serving import json_tensor
from zoo.serving.app import Call, Server
from zoo.serving.json_tensor import RequestError

log = logging.getLogger("zoo")

# TensorFlow Serving: builder.SetMaxMessageSize(tensorflow::kint32max).
MAX_MESSAGE_BYTES = 2 ** 31 - 1
PREDICT_METHOD = "tensorflow/serving/predict"
SERVICES = ("tensorflow.serving.PredictionService", "tensorflow.serving.ModelService")
# Requests larger than this are converted to numpy in a worker thread, off the event loop.
_INLINE_BYTES = 64 * 1024


def _spec(model_spec, default_signature: bool = True):
  """(name, version, label, signature_name) of a request's ModelSpec."""
  version = model_spec.version.value if model_spec.HasField("version") else None
  label = model_spec.version_label or None
  signature = model_spec.signature_name or ("serving_default" if default_signature else "")
  return model_spec.name, version, label, signature


def _inputs(request, signature) -> tuple[dict, int]:
  """The request's TensorProtos as numpy arrays checked against the signature; their rows."""
  if not request.inputs:
    raise RequestError("Request has no inputs: expected "
                       f"{{{', '.join(sorted(signature.inputs))}}}.")
  sent, expected = set(request.inputs), set(signature.inputs)
  if sent != expected:
    raise RequestError(
        f"input size does not match signature: {len(sent)}!={len(expected)} "
        f"len({{{','.join(sorted(sent))}}}) != len({{{','.join(sorted(expected))}}}). "
        f"Sent extra: {{{','.join(sorted(sent - expected))}}}. Missing but required: "
        f"{{{','.join(sorted(expected - sent))}}}.")
  arrays = {}
  for name, proto in request.inputs.items():
    spec = signature.inputs[name]
    if proto.dtype != types_pb2.DataType.Value(spec.dtype_name):
      sent = (types_pb2.DataType.Name(proto.dtype)
              if proto.dtype in types_pb2.DataType.values() else str(proto.dtype))
      raise RequestError(f"Input `{name}`: expected dtype {spec.dtype_name}, received "
                         f"{sent}.")
    try:
      array = tf.make_ndarray(proto)
    except Exception as e:  # noqa: BLE001 - a malformed TensorProto is the request's fault.
      raise RequestError(f"Input `{name}`: not a valid TensorProto ({e}).") from None
    if array.dtype.kind == "S":  # make_ndarray gives fixed-width bytes for short strings.
      array = array.astype(object)
    json_tensor.check_shape(array, name, spec)
    arrays[name] = array
  rows = {a.shape[0] if a.ndim else None for a in arrays.values()}
  if len(rows) != 1 or None in rows:
    raise RequestError("Inputs must have the same batch size (first dimension); received "
                       f"{ {k: list(v.shape) for k, v in arrays.items()} }.")
  return arrays, rows.pop()


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
  """`tensorflow.serving.PredictionService` over a `Server`."""

  def __init__(self, server: Server):
    self.server = server

  async def _answer(self, api, context, handle, request):
    """Runs `handle(request, call)`, turning errors into TensorFlow Serving's codes and
    counting the request."""
    started, call = time.perf_counter(), Call(model=request.model_spec.name, api=api)
    code = "OK"
    try:
      return await handle(request, call)
    except RequestError as e:
      code = e.code
      await context.abort(getattr(grpc.StatusCode, e.code), e.message)
    except asyncio.CancelledError:
      code = "CANCELLED"
      raise
    except Exception as e:  # noqa: BLE001 - a server error, reported; the server goes on.
      if isinstance(e, grpc.aio.AbortError):
        raise
      code = "INTERNAL"
      log.exception("Error serving gRPC %s for %r", api, call.model)
      await context.abort(grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {e}")
    finally:
      self.server.record(call, "GRPC", code, time.perf_counter() - started)

  async def Predict(self, request, context):
    return await self._answer("predict", context, self._predict, request)

  async def _predict(self, request, call):
    name, version, label, signature_name = _spec(request.model_spec)
    servable = self.server.repository.resolve(name, version, label)
    signature = servable.signature(signature_name)
    unknown = [k for k in request.output_filter if k not in signature.outputs]
    if unknown:
      raise RequestError(f"output tensor alias not found in signature: {unknown[0]} "
                         f"Outputs expected to be in the set "
                         f"{{{','.join(sorted(signature.outputs))}}}.")
    loop = asyncio.get_running_loop()
    if request.ByteSize() > _INLINE_BYTES:
      inputs, rows = await loop.run_in_executor(self.server.executor, _inputs, request,
                                                signature)
    else:
      inputs, rows = _inputs(request, signature)
    outputs = await self.server.infer(servable, signature, inputs, rows)
    wanted = list(request.output_filter) or list(outputs)
    response = predict_pb2.PredictResponse()
    response.model_spec.name = name
    response.model_spec.version.value = servable.version
    response.model_spec.signature_name = signature_name
    for key in wanted:
      response.outputs[key].CopyFrom(tf.make_tensor_proto(outputs[key]))
    return response

  async def GetModelMetadata(self, request, context):
    return await self._answer("GetModelMetadata", context, self._metadata, request)

  async def _metadata(self, request, call):
    if not request.metadata_field:
      raise RequestError("GetModelMetadataRequest must specify at least one metadata_field")
    for field in request.metadata_field:
      if field != "signature_def":
        raise RequestError(f"Metadata field {field} is not supported")
    name, version, label, _ = _spec(request.model_spec, default_signature=False)
    servable = self.server.repository.resolve(name, version, label)
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = name
    response.model_spec.version.value = servable.version
    signature_defs = get_model_metadata_pb2.SignatureDefMap()
    for key, definition in servable.signature_protos.items():
      signature_defs.signature_def[key].CopyFrom(definition)
    response.metadata["signature_def"].Pack(signature_defs)
    return response

  def _not_predict(self, kind: str):
    async def handle(request, call):
      spec = request.model_spec if kind != "multi" else (
          request.tasks[0].model_spec if request.tasks else None)
      if spec is None:
        raise RequestError("MultiInferenceRequest has no tasks.")
      name, version, label, signature_name = _spec(spec)
      servable = self.server.repository.resolve(name, version, label)
      servable.signature(signature_name)  # FAILED_PRECONDITION if it has none such.
      method = servable.signature_protos[signature_name].method_name or PREDICT_METHOD
      if kind == "multi":
        raise RequestError(f"Unsupported signature method_name: {method}")
      noun = "classification" if kind == "classify" else "regression"
      raise RequestError(f"Expected {noun} signature method_name to be "
                         f"tensorflow/serving/{kind}. Was: {method}")
    return handle

  async def Classify(self, request, context):
    return await self._answer("classify", context, self._not_predict("classify"), request)

  async def Regress(self, request, context):
    return await self._answer("regress", context, self._not_predict("regress"), request)

  async def MultiInference(self, request, context):
    return await self._answer("MultiInference", context, self._not_predict("multi"),
                              _FirstTask(request))


class _FirstTask:
  """A MultiInferenceRequest seen through its first task's model_spec (it has none of its
  own; the metrics count it under that model)."""

  def __init__(self, request):
    self.tasks = request.tasks
    self.model_spec = (request.tasks[0].model_spec if request.tasks
                       else predict_pb2.PredictRequest().model_spec)


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
  """`tensorflow.serving.ModelService`: GetModelStatus (config reloads are not offered:
  the server follows its folders instead; HandleReloadConfigRequest is UNIMPLEMENTED)."""

  def __init__(self, server: Server, predictions: PredictionService):
    self.server = server
    self.predictions = predictions

  async def GetModelStatus(self, request, context):
    async def handle(request, call):
      name, version, label, _ = _spec(request.model_spec, default_signature=False)
      status = self.server.repository.status(name, version, label)
      return json_format.ParseDict(status, get_model_status_pb2.GetModelStatusResponse())
    return await self.predictions._answer("GetModelStatus", context, handle, request)


def make_grpc_server(server: Server):
  """A `grpc.aio` server with the services above and the health service (not started;
  add its port). Returns `(grpc_server, health_servicer)`."""
  grpc_server = grpc.aio.server(options=[
      ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
      ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
  ])
  predictions = PredictionService(server)
  prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(predictions,
                                                                      grpc_server)
  model_service_pb2_grpc.add_ModelServiceServicer_to_server(
      ModelService(server, predictions), grpc_server)
  health_servicer = health.aio.HealthServicer()
  health_pb2_grpc.add_HealthServicer_to_server(health_servicer, grpc_server)
  return grpc_server, health_servicer


async def set_serving(health_servicer, serving: bool) -> None:
  status = (health_pb2.HealthCheckResponse.SERVING if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING)
  for service in ("",) + SERVICES:
    await health_servicer.set(service, status)
