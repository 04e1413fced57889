"""BENCHMARKS.md, "Serving over REST and gRPC (protocols)": scripts/serve.py on loopback
under single-image requests over TensorFlow Serving's REST API (Debian's wrk) and its
gRPC API (nghttp2's h2load), batching off and on, a photo-sized detector input, and
requests while versions are loaded and unloaded."""

from __future__ import annotations

import json
import os
import resource
import shutil
import struct
import subprocess
import tempfile
import threading
import urllib.request
from typing import Sequence

import numpy as np
import tensorflow as tf
from prometheus_client.parser import text_string_to_metric_families
from tensorflow_serving.apis import predict_pb2

from benchmarks import report
from benchmarks.serving import Server, in_process_rates, wrk_load
from zoo.data import mnist_detection

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PREDICT = "/tensorflow.serving.PredictionService/Predict"
_TICKS = os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
  usage = resource.getrusage(resource.RUSAGE_CHILDREN)
  return usage.ru_utime + usage.ru_stime


def _process_cpu(pid: int) -> float:
  """CPU seconds (user + system) a running process has used, from /proc."""
  with open(f"/proc/{pid}/stat") as f:
    fields = f.read().rsplit(")", 1)[1].split()
  return (int(fields[11]) + int(fields[12])) / _TICKS


def h2load_grpc(host: str, port: int, payload: bytes, *, clients: int, requests: int,
                max_seconds: float, duration: float | None = None) -> dict:
  """nghttp2's h2load as a gRPC load generator: `clients` HTTP/2 connections with one call
  in flight each (as wrk's keep-alive connections), on 1-2 threads, POSTing `payload` (a
  serialized PredictRequest in gRPC's length-prefixed frame) `requests` times, or for
  `duration` seconds. A compiled client like wrk, so both protocols are driven at the same
  small client cost. h2load checks HTTP statuses only (a gRPC error travels in a 200's
  trailers): the caller counts failures from the server's own request_count."""
  if not shutil.which("h2load"):
    raise FileNotFoundError("The protocols benchmark needs h2load: "
                            "sudo apt-get install nghttp2-client")
  threads = min(2, clients)
  with tempfile.TemporaryDirectory() as tmp:
    body, log = os.path.join(tmp, "body"), os.path.join(tmp, "log")
    with open(body, "wb") as f:
      f.write(b"\x00" + struct.pack(">I", len(payload)) + payload)
    count = ["-D", str(int(duration))] if duration else ["-n", str(requests)]
    subprocess.run(
        ["h2load", *count, f"-c{clients}", "-m1", f"-t{threads}", f"--data={body}",
         "-H", "content-type: application/grpc", "-H", "te: trailers", f"--log-file={log}",
         f"http://{host}:{port}{PREDICT}"],
        capture_output=True, text=True, timeout=(duration or max_seconds) + 120, check=True)
    rows = np.loadtxt(log, dtype=np.int64, ndmin=2)  # start µs, HTTP status, elapsed µs
  ok = rows[rows[:, 1] == 200]
  seconds = ((rows[:, 0] + rows[:, 2]).max() - rows[:, 0].min()) / 1e6
  return {"clients": clients, "requests": len(rows), "failed": len(rows) - len(ok),
          "seconds": seconds, "requests_per_second": len(ok) / seconds,
          "p50_ms": float(np.percentile(ok[:, 2], 50)) / 1000,
          "p99_ms": float(np.percentile(ok[:, 2], 99)) / 1000}


def _ok_count(server, model: str) -> float:
  """The server's `:tensorflow:serving:request_count{model_name=model, status="OK"}`."""
  text = urllib.request.urlopen(
      f"http://127.0.0.1:{server.port}/monitoring/prometheus/metrics", timeout=30).read()
  return sum(s.value for family in text_string_to_metric_families(text.decode())
             for s in family.samples
             if s.name == ":tensorflow:serving:request_count"
             and s.labels == {"model_name": model, "status": "OK"})


def _measured(run, server: Server) -> dict:
  """`run()` with the client processes' and the server's CPU seconds."""
  clients_before, server_before = _children_cpu(), _process_cpu(server.process.pid)
  result = run()
  result["client_cpu_s"] = _children_cpu() - clients_before
  result["server_cpu_s"] = _process_cpu(server.process.pid) - server_before
  return result


def _bodies(name: str, images: np.ndarray):
  """One REST JSON body and one serialized gRPC PredictRequest per image (the image as a
  uint8 tensor [1, ...] in both)."""
  rest, grpc_payloads = [], []
  for image in images:
    rest.append(json.dumps({"instances": [image.tolist()]}).encode())
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(image[None]))
    grpc_payloads.append(request.SerializeToString())
  return rest, grpc_payloads


def _load_both(server: Server, name: str, rest_bodies, grpc_payloads, *, clients: int,
               requests: int, max_seconds: float) -> list:
  rows = []
  path = f"/v1/models/{name}:predict"
  rows.append({"protocol": "REST", **_measured(lambda: wrk_load(
      "127.0.0.1", server.port, path, rest_bodies, clients=clients, requests=requests,
      max_seconds=max_seconds), server)})
  before = _ok_count(server, name)
  grpc = _measured(lambda: h2load_grpc("127.0.0.1", server.grpc_port, grpc_payloads[0],
                                       clients=clients, requests=requests,
                                       max_seconds=max_seconds), server)
  # gRPC errors travel in HTTP 200 trailers: count what the server answered OK.
  grpc["failed"] = max(grpc["failed"], grpc["requests"] - int(_ok_count(server, name) - before))
  rows.append({"protocol": "gRPC", **grpc})
  return rows


def _churn(model_dir: str, manual_dir: str, *, seconds: float, every_s: float,
           clients: int) -> dict:
  """Requests over both protocols while a new version of the model is copied in (and the
  oldest removed) every `every_s` seconds, the server polling every 0.5 s."""
  name = os.path.basename(os.path.normpath(model_dir))
  newest = max(int(v) for v in os.listdir(model_dir) if v.isdigit())
  images = mnist_detection.read_idx(
      os.path.join(manual_dir, "t10k-images-idx3-ubyte.gz"))[:64, ..., None].copy()
  rest_bodies, grpc_payloads = _bodies(name, images)
  with tempfile.TemporaryDirectory() as tmp:
    folder = os.path.join(tmp, name)
    shutil.copytree(os.path.join(model_dir, str(newest)), os.path.join(folder, "1"))
    with Server(f"--model_name={name}", f"--model_base_path={folder}",
                "--file_system_poll_wait_seconds=0.5") as server:
      stop, served = threading.Event(), set()

      def churn():
        version = 1
        while not stop.wait(every_s):
          version += 1
          staging = os.path.join(tmp, f"staging{version}")
          shutil.copytree(os.path.join(model_dir, str(newest)), staging)
          os.rename(staging, os.path.join(folder, str(version)))  # Atomic, as export's.
          if version > 2:
            shutil.rmtree(os.path.join(folder, str(version - 2)), ignore_errors=True)

      def watch():
        while not stop.wait(0.25):
          served.update(server.health()["models"].get(name, []))

      threads = [threading.Thread(target=churn), threading.Thread(target=watch)]
      for t in threads:
        t.start()
      results = {}
      before = _ok_count(server, name)
      loads = [
          threading.Thread(target=lambda: results.__setitem__("REST", wrk_load(
              "127.0.0.1", server.port, f"/v1/models/{name}:predict", rest_bodies,
              clients=clients, requests=10 ** 7, max_seconds=seconds))),
          threading.Thread(target=lambda: results.__setitem__("gRPC", h2load_grpc(
              "127.0.0.1", server.grpc_port, grpc_payloads[0], clients=clients,
              requests=0, max_seconds=seconds, duration=seconds)))]
      for t in loads:
        t.start()
      for t in loads:
        t.join()
      stop.set()
      for t in threads:
        t.join()
      # Every request either protocol sent, against what the server answered OK.
      answered_ok = int(_ok_count(server, name) - before)
      sent = results["REST"]["requests"] + results["gRPC"]["requests"]
      results["gRPC"]["failed"] = max(results["gRPC"]["failed"],
                                      sent - results["REST"]["failed"] - answered_ok)
  return {"seconds": seconds, "every_s": every_s, "clients": clients,
          "versions_served": sorted(served), "runs": results}


def protocols_benchmark(model_dir: str, *, manual_dir: str, detector_dir: str,
                        clients: Sequence[int] = (1, 16), requests: int = 3000,
                        max_seconds: float = 20.0, photo_requests: int = 300,
                        churn_seconds: float = 30.0) -> dict:
  name = os.path.basename(os.path.normpath(model_dir))
  version = max(int(v) for v in os.listdir(model_dir) if v.isdigit())
  images = mnist_detection.read_idx(
      os.path.join(manual_dir, "t10k-images-idx3-ubyte.gz"))[:256, ..., None].copy()
  rest_bodies, grpc_payloads = _bodies(name, images)
  out = {"model": name, "version": version, "requests": requests,
         "max_seconds": max_seconds, "runs": []}
  root = os.path.dirname(os.path.normpath(model_dir))
  for batching in (False, True):
    with Server(f"--model_base_path={root}", f"--models={name}",
                f"--enable_batching={batching}") as server:
      _load_both(server, name, rest_bodies[:32], grpc_payloads[:32], clients=4,
                 requests=200, max_seconds=5)  # Warm-up.
      for n in clients:
        for row in _load_both(server, name, rest_bodies, grpc_payloads, clients=n,
                              requests=requests, max_seconds=max_seconds):
          out["runs"].append({"batching": batching, **row})
  # A photo-sized input: a 640x480 gray canvas with digits on it, as a uint8 tensor.
  detector = os.path.basename(os.path.normpath(detector_dir))
  canvas = np.zeros((480, 640, 1), np.uint8)
  for i in range(6):
    canvas[60 + 60 * (i % 3):88 + 60 * (i % 3), 80 + 200 * (i // 3):108 + 200 * (i // 3)] = \
        images[i]
  rest_photo, grpc_photo = _bodies(detector, canvas[None])
  out["photo"] = {"model": detector, "bytes_rest": len(rest_photo[0]),
                  "bytes_grpc": len(grpc_photo[0]), "runs": []}
  with Server(f"--model_base_path={os.path.dirname(os.path.normpath(detector_dir))}",
              f"--models={detector}") as server:
    _load_both(server, detector, rest_photo, grpc_photo, clients=2, requests=10,
               max_seconds=10)  # Warm-up.
    for n in (1, 8):
      out["photo"]["runs"] += _load_both(server, detector, rest_photo, grpc_photo,
                                         clients=n, requests=photo_requests,
                                         max_seconds=max_seconds * 2)
  out["churn"] = _churn(model_dir, manual_dir, seconds=churn_seconds, every_s=3.0, clients=4)
  out["in_process"] = in_process_rates(os.path.join(model_dir, str(version)), images,
                                       sorted(set(clients)), seconds=5.0)
  return out


def _table(runs, with_batching: bool) -> list:
  head = "| batching " if with_batching else ""
  lines = [head + "| clients | protocol | requests | failed | requests/s | p50 latency | "
           "p99 latency | client CPU per 1k requests | server CPU per 1k requests |",
           ("|---" if with_batching else "") + "|---|---|---|---|---|---|---|---|---|"]
  for r in runs:
    per_k = 1000 / max(1, r["requests"])
    cell = f"| {'on' if r['batching'] else 'off'} " if with_batching else ""
    lines.append(cell + f"| {r['clients']} | {r['protocol']} | {r['requests']:,} | "
                 f"{r['failed']} | {r['requests_per_second']:.0f} | {r['p50_ms']:.1f} ms | "
                 f"{r['p99_ms']:.1f} ms | {r['client_cpu_s'] * per_k:.2f} s | "
                 f"{r['server_cpu_s'] * per_k:.2f} s |")
  return lines


def protocols_report(row: dict, *, command: str) -> str:
  """The protocols section of BENCHMARKS.md."""
  lines = report.header(command, libraries="keras grpcio uvicorn") + [
      f"`scripts/serve.py` serving `{row['model']}` version {row['version']} on loopback, "
      "one real MNIST test digit per request as a uint8 tensor: REST in TensorFlow "
      "Serving's row format from Debian's `wrk`, gRPC `Predict` with a `TensorProto` from "
      "nghttp2's `h2load` (both compiled clients: one connection per client with one request "
      "in flight, 1-2 threads, answers not parsed; gRPC failures counted from the server's "
      "`request_count`, since gRPC errors travel in HTTP 200 trailers). The clients are "
      "separate processes sharing the server's 2 cores; their CPU and the server's are given "
      "per 1,000 requests. "
      f"{row['requests']:,} requests per row at most, {row['max_seconds']:.0f} s at most, "
      "after a warm-up.", ""] + _table(row["runs"], True)
  by = {(r["batching"], r["clients"], r["protocol"]): r for r in row["runs"]}
  most = max(r["clients"] for r in row["runs"])
  for batching in (False, True):
    rest, grpc = by.get((batching, most, "REST")), by.get((batching, most, "gRPC"))
    if rest and grpc:
      ratio = grpc["requests_per_second"] / rest["requests_per_second"]
      lines += ["", f"Batching {'on' if batching else 'off'}, {most} clients: gRPC serves "
                f"**{ratio:.2f}x** the requests/s of REST (goal: at least 1x)."]
  photo = row["photo"]
  lines += ["", f"A photo-sized input: `{photo['model']}` on one 640x480 gray canvas per "
            f"request (uint8 tensor; {photo['bytes_rest'] / 1e6:.2f} MB of JSON over REST, "
            f"{photo['bytes_grpc'] / 1e6:.2f} MB of TensorProto over gRPC), batching on:", ""]
  lines += _table(photo["runs"], False)
  churn = row["churn"]
  lines += ["", f"Versions coming and going: `{row['model']}` served with `--model_name`, "
            "`--file_system_poll_wait_seconds=0.5`, while a new version is copied in "
            f"(atomically, as `scripts/export.py` writes one) every {churn['every_s']:.0f} s "
            f"and the one before the previous removed, for {churn['seconds']:.0f} s; "
            f"{churn['clients']} REST and {churn['clients']} gRPC clients at once. Versions "
            f"served during the run: {len(churn['versions_served'])} "
            f"({churn['versions_served'][0]} to {churn['versions_served'][-1]}).", "",
            "| protocol | requests | failed | requests/s | p99 latency |", "|---|---|---|---|---|"]
  for protocol, r in churn["runs"].items():
    lines.append(f"| {protocol} | {r['requests']:,} | {r['failed']} | "
                 f"{r['requests_per_second']:.0f} | {r['p99_ms']:.1f} ms |")
  lines += ["", "The limit: the SavedModel's `serving_default` called in-process, images/s:",
            "", "| batch size | images/s |", "|---|---|"]
  for batch, rate in row["in_process"].items():
    lines.append(f"| {batch} | {rate:.0f} |")
  return "\n".join(lines) + "\n"


def main(flags, workdir: str, command: str) -> tuple[str, str]:
  row = protocols_benchmark(flags.protocols, manual_dir=flags.manual_dir,
                            detector_dir=flags.protocols_detector,
                            requests=flags.serving_requests,
                            max_seconds=min(flags.serving_seconds, 20.0))
  return "Serving over REST and gRPC (protocols)", protocols_report(row, command=command)
