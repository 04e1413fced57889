"""The HTTP application: TensorFlow Serving's REST API, `/healthz`, and the browser demo.

  app = make_app(Repository.load("saved_models"), ServerOptions())
  uvicorn.run(app, host="127.0.0.1", port=8501)       # what scripts/serve.py does

Routes (paths and answers as `tensorflow_serving/model_servers/http_rest_api_util.cc`
defines them; `<v>` a version number, `<label>` a version label):

  GET  /v1/models/<name>[/versions/<v> | /labels/<label>]            model status
  GET  /v1/models/<name>[/versions/<v> | /labels/<label>]/metadata   signature defs
  POST /v1/models/<name>[/versions/<v> | /labels/<label>]:predict    predictions
  GET  /monitoring/prometheus/metrics                                Prometheus metrics
  GET  /healthz                                                      liveness + counters
  GET  /                                                             the demo page

Every error is `{"error": "..."}` with TensorFlow Serving's status codes: 400 for a bad
request (malformed JSON, wrong keys, dtypes, nesting or shapes, `b64` for a number,
undecodable image bytes, unknown signature or label), 404 for an unknown model or
version, 413 for a body over `max_body_bytes`, 503 when the batching queue is full; a
request over `max_request_rows` rows gets 400. A model failure that is not the request's
fault is a 500 with the error, logged, and the server goes on serving.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import importlib.resources
import logging
import re
import time

from zoo.serving import json_tensor
from zoo.serving import metrics as serving_metrics
from zoo.serving.batching import Batcher
from zoo.serving.json_tensor import RequestError
from zoo.serving.repository import Repository

log = logging.getLogger("zoo")

_PREDICT = re.compile(r"(?i)/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?"
                      r":(classify|regress|predict)")
_STATUS = re.compile(r"(?i)/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|"
                     r"(?:/labels/([^/:]+)))?(?:/(metadata))?")
_DEMO_FILES = {"/": ("index.html", "text/html; charset=utf-8"),
               "/demo.js": ("demo.js", "text/javascript; charset=utf-8"),
               "/demo.css": ("demo.css", "text/css; charset=utf-8")}


@dataclasses.dataclass(frozen=True)
class ServerOptions:
  """How the server takes requests.

  Attributes:
    max_body_bytes: largest request body, bytes (413 above it).
    max_request_rows: most examples (first-dimension rows) in one request (400 above it).
    enable_batching: gather concurrent requests for a signature into one model call.
    max_batch_size: rows per batched model call at most.
    batch_timeout_micros: longest a request waits for others to join its batch, µs.
    max_enqueued_batches: queue bound, in batches of `max_batch_size` rows (503 past it).
    num_threads: threads that run model calls (the event loop never does).
    cors_origins: origins allowed to call the API from a browser (none by default).
    demo: serve the browser demo at `/`.
  """
  max_body_bytes: int = 16 * 1024 * 1024
  max_request_rows: int = 1024
  enable_batching: bool = True
  max_batch_size: int = 32
  batch_timeout_micros: int = 2000
  max_enqueued_batches: int = 64
  num_threads: int = 4
  cors_origins: tuple = ()
  demo: bool = True


def _error(message: str, status: int):
  from starlette.responses import Response
  return Response(json_tensor.dumps({"error": message}), status_code=status,
                  media_type="application/json")


def _json(obj, status: int = 200):
  from starlette.responses import Response
  return Response(json_tensor.dumps(obj), status_code=status, media_type="application/json")


async def _read_body(request, limit: int) -> bytes:
  declared = request.headers.get("content-length")
  if declared is not None and declared.isdigit() and int(declared) > limit:
    raise RequestError(f"Request body of {declared} bytes is over the server's limit of "
                       f"{limit} bytes (--max_body_bytes).", status=413)
  chunks, size = [], 0
  async for chunk in request.stream():
    size += len(chunk)
    if size > limit:
      raise RequestError(f"Request body is over the server's limit of {limit} bytes "
                         "(--max_body_bytes).", status=413)
    chunks.append(chunk)
  return b"".join(chunks)


@dataclasses.dataclass
class Call:
  """What a request turned out to be, for the metrics: its model and its API."""
  model: str = ""
  api: str = ""


class Server:
  """The request handlers over a `Repository`, with one batcher per signature; the REST
  API's here, the gRPC API's in `zoo.serving.grpc_api`, both through `infer` (so requests
  for one signature share its batcher whatever their protocol) and `record`."""

  # Bodies larger than this are parsed in a worker thread, off the event loop.
  INLINE_PARSE_BYTES = 64 * 1024

  def __init__(self, repository: Repository, options: ServerOptions,
               metrics: serving_metrics.Metrics | None = None):
    self.repository = repository
    self.options = options
    self.metrics = metrics or serving_metrics.Metrics()
    self.executor = concurrent.futures.ThreadPoolExecutor(
        max_workers=options.num_threads, thread_name_prefix="model")
    self.batchers = {}
    self.started = time.time()
    self.requests = 0
    self.errors = 0

  def _batcher(self, servable, signature) -> Batcher:
    key = (servable.name, servable.version, signature)
    if key not in self.batchers:
      # Versions unloaded since: their batchers go (a running batch finishes first).
      loaded = self.repository.loaded()
      for old in [k for k in self.batchers if k[1] not in loaded.get(k[0], ())]:
        del self.batchers[old]
      o = self.options
      self.batchers[key] = Batcher(
          lambda inputs: servable.run(signature, inputs), max_batch_size=o.max_batch_size,
          timeout_s=o.batch_timeout_micros / 1e6,
          max_enqueued_rows=o.max_enqueued_batches * o.max_batch_size,
          executor=self.executor,
          observe=lambda rows, waits: self.metrics.batch(servable.name, rows, waits))
    return self.batchers[key]

  async def infer(self, servable, signature, inputs: dict, rows: int) -> dict:
    """Runs one request's inputs on `servable`'s `signature` (a `Signature`): batched
    with other requests when batching is on and the signature allows it."""
    if rows > self.options.max_request_rows:
      raise RequestError(f"Request has {rows} rows (examples); the server's limit "
                         f"is {self.options.max_request_rows} per request "
                         "(--max_request_rows). Split it into several requests.")
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(self.executor, servable.check_request, inputs)
    if self.options.enable_batching and signature.batchable and rows > 0:
      self.metrics.enqueued(servable.name, rows)
      return await self._batcher(servable, signature.name).submit(inputs)
    return await loop.run_in_executor(self.executor, servable.run, signature.name, inputs)

  def record(self, call: Call, entrypoint: str, code: str, seconds: float) -> None:
    """Counts one answered request (`code`: its gRPC status name, "OK" if it succeeded)."""
    self.requests += 1
    if code != "OK":
      self.errors += 1
    self.metrics.request(call.model, call.api, entrypoint, code, seconds)

  async def api(self, request):
    """Every /v1/... request: TensorFlow Serving's dispatch, its errors as JSON."""
    started, call = time.perf_counter(), Call()
    try:
      response, code = await self._api(request, call), "OK"
    except RequestError as e:
      response, code = _error(e.message, e.status), e.code
    except Exception as e:  # noqa: BLE001 - a server error, reported; the server goes on.
      log.exception("Error serving %s %s", request.method, request.url.path)
      response, code = _error(f"Internal error: {type(e).__name__}: {e}", 500), "INTERNAL"
    self.record(call, "REST", code, time.perf_counter() - started)
    return response

  async def _api(self, request, call: Call):
    method, path = request.method, request.url.path
    if method == "POST":
      match = _PREDICT.fullmatch(path)
      if match:
        name, version, label, verb = match.groups()
        call.model, call.api = name, verb.lower()
        if verb.lower() != "predict":
          raise RequestError(f"The {verb} API needs a signature of method "
                             f"tensorflow/serving/{verb.lower()}; the models served here "
                             "have predict signatures only: use :predict.")
        body = await _read_body(request, self.options.max_body_bytes)
        return await self.predict(name, _version(version), label, body)
    elif method == "GET":
      match = _STATUS.fullmatch(path)
      if match:
        name, version, label, metadata = match.groups()
        call.model = name or ""
        call.api = "GetModelMetadata" if metadata else "GetModelStatus"
        if not name:
          raise RequestError("Missing model name in request.")
        if version and label:
          raise RequestError(f"Both model version ({version}) and model version label "
                             f"({label}) cannot be supplied.")
        if metadata:
          return _json(self.repository.metadata(name, _version(version), label))
        return _json(self.repository.status(name, _version(version), label))
    raise RequestError(f"Malformed request: {method} {path}")

  async def predict(self, name, version, label, body: bytes):
    servable = self.repository.resolve(name, version, label)
    if len(body) > self.INLINE_PARSE_BYTES:
      doc = await asyncio.get_running_loop().run_in_executor(
          self.executor, json_tensor.parse_body, body)
    else:
      doc = json_tensor.parse_body(body)
    signature = servable.signature(json_tensor.signature_name(doc))
    parsed = json_tensor.parse_predict(doc, signature.inputs)
    outputs = await self.infer(servable, signature, parsed.inputs, parsed.rows)
    return _json(json_tensor.encode_outputs(outputs, parsed.format))

  async def healthz(self, request):
    """Liveness for probes, with what is loaded and how batching is going."""
    return _json({
        "status": "ok",
        "uptime_s": round(time.time() - self.started, 1),
        "models": self.repository.loaded(),
        "requests": self.requests, "errors": self.errors,
        "requests_by_status": self.metrics.requests_by_status(),
        "batching": {f"{n}/{v}/{s}": b.stats.as_dict()
                     for (n, v, s), b in self.batchers.items()},
    })


def _version(text):
  return int(text) if text else None


def _demo_files() -> dict:
  root = importlib.resources.files("zoo.serving") / "static"
  return {path: (root.joinpath(name).read_bytes(), media)
          for path, (name, media) in _DEMO_FILES.items()}


def make_app(repository: Repository, options: ServerOptions = ServerOptions(),
             server: Server | None = None):
  """The Starlette application serving `repository` with `options` (through `server`,
  shared with the gRPC API when given)."""
  from starlette.applications import Starlette
  from starlette.middleware import Middleware
  from starlette.middleware.cors import CORSMiddleware
  from starlette.requests import Request
  from starlette.responses import Response

  owned = server is None  # A shared server's executor is shut down by its owner.
  server = server or Server(repository, options)
  demo = _demo_files() if options.demo else {}

  async def dispatch(request):
    path = request.url.path
    if request.method == "GET" and path == "/healthz":
      return await server.healthz(request)
    if request.method == "GET" and path == serving_metrics.PATH:
      return Response(server.metrics.exposition(),
                      media_type=serving_metrics.CONTENT_TYPE)
    if request.method == "GET" and path in demo:
      content, media = demo[path]
      return Response(content, media_type=media, headers={"Cache-Control": "no-cache"})
    if path.lower().startswith("/v1/"):
      return await server.api(request)
    return _error(f"Not found: {request.method} {path}. The API is under /v1/models/ "
                  "(TensorFlow Serving's REST API); see also /healthz and /.", 404)

  @contextlib.asynccontextmanager
  async def lifespan(app):
    yield
    if owned:
      server.executor.shutdown(wait=False, cancel_futures=True)

  async def every_request(scope, receive, send):
    # One handler for every path and method (no route table: any path, even one holding a
    # newline, gets a JSON answer rather than a framework's default page).
    response = await dispatch(Request(scope, receive))
    await response(scope, receive, send)

  middleware = []
  if options.cors_origins:
    middleware.append(Middleware(CORSMiddleware, allow_origins=list(options.cors_origins),
                                 allow_methods=["GET", "POST"],
                                 allow_headers=["Content-Type"]))
  app = Starlette(routes=[], middleware=middleware, lifespan=lifespan)
  app.router.default = every_request
  app.state.server = server
  return app
