"""One server process: the REST API (uvicorn) and the gRPC API (grpc.aio) on one event
loop over one `Server`, the model folders polled in the background, and a drain on
SIGTERM/SIGINT.

  asyncio.run(serve(repository, ServerOptions(), Endpoints(port=8501, grpc_port=8500)))

Stopping: on SIGTERM (what Kubernetes and Docker send) or SIGINT, the health service says
NOT_SERVING, both listeners stop accepting, requests already accepted on either protocol
run to their answer (for at most `grace_s` seconds), then the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import signal
from typing import Callable

import uvicorn

from zoo.serving import app as serving_app
from zoo.serving import grpc_api
from zoo.serving.repository import Repository

log = logging.getLogger("zoo")


# The line `zoo-serve` logs once both APIs accept connections, with the ports it bound:
# with `--port=0` / `--grpc_port=-1` it is how a caller learns where the server listens.
_READY = re.compile(r"Serving .* on http://[^\s:]+:(?P<port>\d+)/"
                    r"(?:, gRPC on [^\s:]+:(?P<grpc_port>\d+))?")


def ready_message(served: str, host: str, port: int, grpc_port: int, batching: bool) -> str:
  """`Serving mnist_cnn/4 on http://127.0.0.1:8501/, gRPC on 127.0.0.1:8500 (batching on).`"""
  grpc = f", gRPC on {host}:{grpc_port}" if grpc_port else ""
  return f"Serving {served} on http://{host}:{port}/{grpc} (batching {'on' if batching else 'off'})."


def ready_ports(text: str) -> tuple[int, int] | None:
  """The REST and gRPC ports (gRPC 0 when off) of the first `ready_message` in a server's
  output, or None before the server is ready."""
  match = _READY.search(text)
  return (int(match["port"]), int(match["grpc_port"] or 0)) if match else None


@dataclasses.dataclass(frozen=True)
class Endpoints:
  """Where and how the process listens.

  Attributes:
    host: address both APIs bind.
    port: REST port (TensorFlow Serving's `--rest_api_port`; 8501).
    grpc_port: gRPC port (TensorFlow Serving's `--port`; 8500); 0 turns gRPC off, -1
      picks a free port.
    poll_wait_s: seconds between polls of the model folders; 0 reads them once.
    grace_s: longest the drain waits for accepted requests, seconds.
    access_log: log every REST request.
  """
  host: str = "127.0.0.1"
  port: int = 8501
  grpc_port: int = 8500
  poll_wait_s: float = 1.0
  grace_s: float = 30.0
  access_log: bool = False


async def serve(repository: Repository, options: serving_app.ServerOptions,
                endpoints: Endpoints, metrics=None,
                on_ready: Callable[[int, int], None] | None = None) -> None:
  """Serves until SIGTERM/SIGINT, then drains; returns when both APIs have stopped.

  Args:
    repository: the models to serve.
    options: request limits, batching, CORS, the demo.
    endpoints: where to listen; port 0 lets the system pick a free port.
    metrics: the `zoo.serving.metrics.Metrics` the repository reports its loads to.
    on_ready: called once both APIs accept connections, with the REST and gRPC ports
      actually bound (gRPC 0 when off): what a caller that asked for port 0 needs.
  """
  server = serving_app.Server(repository, options, metrics)
  grpc_server = health = None
  grpc_bound = 0
  if endpoints.grpc_port:
    grpc_server, health = grpc_api.make_grpc_server(server)
    address = f"{endpoints.host}:{max(endpoints.grpc_port, 0)}"  # :0, a free port.
    grpc_bound = grpc_server.add_insecure_port(address)
    if grpc_bound == 0:
      raise OSError(f"Could not bind the gRPC port {address}.")
    await grpc_server.start()
    await grpc_api.set_serving(health, True)
  rest = _Uvicorn(uvicorn.Config(
      serving_app.make_app(repository, options, server), host=endpoints.host,
      port=endpoints.port, access_log=endpoints.access_log, log_level="info",
      timeout_graceful_shutdown=int(max(1, endpoints.grace_s))))
  loop = asyncio.get_running_loop()
  stopping = []

  async def stop_grpc():
    if grpc_server is not None:
      await grpc_api.set_serving(health, False)
      # Refuses new RPCs at once; waits for the running ones up to the grace period.
      await grpc_server.stop(endpoints.grace_s)

  def drain(signum):
    if stopping:
      return
    log.info("Received %s: draining (at most %.0f s), then exiting.",
             signal.Signals(signum).name, endpoints.grace_s)
    rest.should_exit = True  # uvicorn stops accepting and finishes what it has.
    stopping.append(loop.create_task(stop_grpc()))

  rest.on_signal = lambda signum: loop.call_soon_threadsafe(drain, signum)
  rest.on_started = lambda rest_port: on_ready and on_ready(rest_port, grpc_bound)
  if endpoints.poll_wait_s > 0:
    repository.watch(endpoints.poll_wait_s)
  try:
    await rest.serve()
  finally:
    await (stopping[0] if stopping else stop_grpc())
    repository.stop()
    server.executor.shutdown(wait=True, cancel_futures=False)


def loop_factory():
  """uvloop's event loop when installed (the `[serve]` extra has it; uvicorn picks it too),
  else asyncio's; grpc.aio runs on either."""
  try:
    import uvloop
  except ImportError:
    return None
  return uvloop.new_event_loop


class _Uvicorn(uvicorn.Server):
  """uvicorn's server, except that SIGTERM/SIGINT call `on_signal` (which drains both
  APIs) and are not re-raised afterwards: uvicorn alone re-raises the signal after its
  shutdown, killing the process with the signal's status before gRPC has drained."""

  on_signal = staticmethod(lambda signum: None)
  on_started = staticmethod(lambda port: None)

  async def startup(self, sockets=None):
    await super().startup(sockets)
    if self.started:  # Not when binding failed (uvicorn has logged why and exits).
      self.on_started(self.servers[0].sockets[0].getsockname()[1])

  @contextlib.contextmanager
  def capture_signals(self):
    previous = {sig: signal.signal(sig, lambda signum, frame: self.on_signal(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
      yield
    finally:
      for sig, handler in previous.items():
        signal.signal(sig, handler)
