"""BENCHMARKS.md, "Serving (serving)": scripts/serve.py on loopback under single-image
requests from Debian's wrk, batching off and on, beside the in-process SavedModel rate."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Sequence

import tensorflow as tf

from benchmarks import report
from zoo.data import mnist_detection
from zoo.serving import runner

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Server:
  """scripts/serve.py on free REST and gRPC ports with `flags`; stops on exit."""

  def __init__(self, *flags: str):
    # The server picks free ports and prints them (`runner.ready_message`); read them there.
    self.log = tempfile.TemporaryFile(mode="w+")
    self.process = subprocess.Popen(
        [sys.executable, os.path.join(REPO, "scripts", "serve.py"), "--port=0",
         "--grpc_port=-1", "--nodemo", *flags], stdout=self.log, stderr=subprocess.STDOUT)
    for _ in range(240):
      self.log.seek(0)
      ports = runner.ready_ports(self.log.read())
      if ports:
        self.port, self.grpc_port = ports
        return
      if self.process.poll() is not None:
        break
      time.sleep(0.5)
    self.log.seek(0)
    raise RuntimeError(f"scripts/serve.py did not start:\n{self.log.read()[-3000:]}")

  def health(self) -> dict:
    return json.loads(urllib.request.urlopen(
        f"http://127.0.0.1:{self.port}/healthz", timeout=10).read())

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.process.terminate()
    self.process.wait(timeout=120)
    self.log.close()


def in_process_rates(version_dir: str, images, batch_sizes: Sequence[int], *,
                     seconds: float = 10.0) -> dict:
  """Images/s of the SavedModel's `serving_default` called in this process, per batch
  size: the limit a server of this model can approach (no HTTP, no JSON)."""
  fn = tf.saved_model.load(version_dir).signatures["serving_default"]
  rates = {}
  for batch in batch_sizes:
    x = tf.constant(images[:batch])
    for _ in range(20):
      fn(images=x)
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
      fn(images=x)
      calls += 1
    rates[batch] = calls * batch / (time.perf_counter() - start)
  return rates


# wrk's script: POSTs the bodies of a file (one JSON body per line) round-robin, stops each
# thread after its share of the request count, and prints wrk's own figures as JSON.
_WRK_SCRIPT = r"""
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } zoo_timespec;
int clock_gettime(int clock, zoo_timespec *t);
]]
local function now()  -- CLOCK_MONOTONIC, seconds
  local t = ffi.new("zoo_timespec")
  ffi.C.clock_gettime(1, t)
  return tonumber(t.tv_sec) + tonumber(t.tv_nsec) * 1e-9
end

local threads = {}
setup = function(thread) threads[#threads + 1] = thread end

local bodies = {}
for line in io.lines(os.getenv("ZOO_WRK_BODIES")) do bodies[#bodies + 1] = line end
local limit = tonumber(os.getenv("ZOO_WRK_PER_THREAD"))
local i = 0
answered, first, last = 0, 0, 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  if first == 0 then first = now() end
  i = i % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[i])
end
response = function(status, headers, body)
  answered = answered + 1
  last = now()
  if answered >= limit then wrk.thread:stop() end
end
done = function(summary, latency, requests)
  local t0, t1 = math.huge, 0
  for _, thread in ipairs(threads) do
    t0 = math.min(t0, thread:get("first"))
    t1 = math.max(t1, thread:get("last"))
  end
  local e = summary.errors
  io.write(string.format(
    '\nZOO_WRK {"requests": %d, "seconds": %.6f, "non_2xx": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p99_us": %d}\n', summary.requests, t1 - t0, e.status,
    e.connect + e.read + e.write + e.timeout, latency:percentile(50), latency:percentile(99)))
end
"""


def wrk_load(host: str, port: int, path: str, bodies: Sequence[bytes], *, clients: int,
             requests: int, max_seconds: float) -> dict:
  """Debian's wrk, `clients` keep-alive connections on 1-2 threads, POSTs `bodies`
  round-robin: `requests` at most (each thread stops after its share), `max_seconds` at
  most (wrk itself runs for `max_seconds` whatever the count; the rate is measured from the
  first request sent to the last answer received). A compiled load generator, so the
  client takes little of the 2 cores the server runs on. Returns requests/s, p50/p99 latency (ms) and failed requests (non-2xx answers
  and socket errors)."""
  if not shutil.which("wrk"):
    raise FileNotFoundError("The serving benchmark needs wrk: sudo apt-get install wrk")
  threads = min(2, clients)
  with tempfile.TemporaryDirectory() as tmp:
    bodies_path, script_path = os.path.join(tmp, "bodies"), os.path.join(tmp, "post.lua")
    with open(bodies_path, "wb") as f:
      f.write(b"\n".join(bodies) + b"\n")
    with open(script_path, "w") as f:
      f.write(_WRK_SCRIPT)
    env = dict(os.environ, ZOO_WRK_BODIES=bodies_path,
               ZOO_WRK_PER_THREAD=str(max(1, requests // threads)))
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{clients}", f"-d{int(max_seconds)}s", "--timeout=30s",
         "-s", script_path, f"http://{host}:{port}{path}"],
        capture_output=True, text=True, env=env, timeout=max_seconds + 120, check=True).stdout
  figures = json.loads(out.split("ZOO_WRK ", 1)[1].splitlines()[0])
  seconds = figures["seconds"]  # First request sent to last answer received.
  failed = figures["non_2xx"] + figures["socket_errors"]
  return {"clients": clients, "requests": figures["requests"], "failed": failed,
          "seconds": seconds, "requests_per_second": figures["requests"] / seconds,
          "p50_ms": figures["p50_us"] / 1000, "p99_ms": figures["p99_us"] / 1000}


def serving_benchmark(model_dir: str, *, manual_dir: str, clients: Sequence[int] = (1, 16),
                      requests: int = 3000, max_seconds: float = 60.0,
                      server_flags: Sequence[str] = (), in_process_seconds: float = 10.0
                      ) -> dict:
  """Starts scripts/serve.py for `model_dir`'s newest version with batching off, then on,
  and loads it with single-image predict requests from 1 and 16 clients; also measures
  the in-process SavedModel rates at batch 1 and 16 (the limit)."""
  name = os.path.basename(os.path.normpath(model_dir))
  version = max(int(v) for v in os.listdir(model_dir) if v.isdigit())
  images = mnist_detection.read_idx(
      os.path.join(manual_dir, "t10k-images-idx3-ubyte.gz"))[:256, ..., None].copy()
  bodies = [json.dumps({"instances": images[i:i + 1].tolist()}).encode()
            for i in range(len(images))]
  row = {"model": name, "version": version, "requests": requests, "max_seconds": max_seconds,
         "server_flags": list(server_flags), "runs": []}
  for batching in (False, True):
    with Server(f"--model_base_path={os.path.dirname(os.path.normpath(model_dir))}",
                f"--models={name}", f"--enable_batching={batching}", *server_flags) as server:
      port = server.port
      path = f"/v1/models/{name}:predict"
      wrk_load("127.0.0.1", port, path, bodies, clients=4, requests=200, max_seconds=3)
      def model_calls():
        health = json.loads(urllib.request.urlopen(
            f"http://127.0.0.1:{port}/healthz", timeout=5).read())
        stats = health["batching"].get(f"{name}/{version}/serving_default", {})
        return stats.get("model_calls", 0), stats.get("rows", 0)

      for n in clients:
        calls, rows = model_calls()
        result = wrk_load("127.0.0.1", port, path, bodies, clients=n, requests=requests,
                          max_seconds=max_seconds)
        calls_after, rows_after = model_calls()
        # Rows per model call during this run (batching off: no batcher, no count).
        mean_batch = ((rows_after - rows) / (calls_after - calls)
                      if calls_after > calls else None)
        result.update(batching=batching, mean_batch=mean_batch)
        row["runs"].append(result)
  row["in_process"] = in_process_rates(os.path.join(model_dir, str(version)), images,
                                       sorted(set(clients)), seconds=in_process_seconds)
  return row


def serving_report(row: dict, *, command: str) -> str:
  """The serving section of BENCHMARKS.md."""
  lines = report.header(command, libraries="keras starlette uvicorn") + [
      f"`scripts/serve.py` serving `{row['model']}` version {row['version']} on loopback; "
      "each request is one real MNIST test digit in TensorFlow Serving's row format "
      f"(`POST /v1/models/{row['model']}:predict`). The load comes from Debian's `wrk` (one "
      "keep-alive connection per client) on the same 2 cores as the server: "
      f"{row['requests']:,} requests per row at most, {row['max_seconds']:.0f} s at most, "
      "after 200 warm-up requests. Server flags: defaults"
      + (f" plus `{' '.join(row['server_flags'])}`" if row["server_flags"] else "")
      + " (batching: max batch 32, 2 ms timeout).",
      "",
      "| batching | clients | requests | failed | requests/s | p50 latency | p99 latency | "
      "rows per model call |",
      "|---|---|---|---|---|---|---|---|",
  ]
  for r in row["runs"]:
    mean = "1 (no batching)" if r["mean_batch"] is None else f"{r['mean_batch']:.1f}"
    lines.append(f"| {'on' if r['batching'] else 'off'} | {r['clients']} | {r['requests']:,} | "
                 f"{r['failed']} | {r['requests_per_second']:.0f} | {r['p50_ms']:.1f} ms | "
                 f"{r['p99_ms']:.1f} ms | {mean} |")
  lines += ["", "The limit: the same SavedModel's `serving_default` called in-process (no HTTP, "
            "no JSON), images/s:", "", "| batch size | images/s |", "|---|---|"]
  for batch, rate in row["in_process"].items():
    lines.append(f"| {batch} | {rate:.0f} |")
  by = {(r["batching"], r["clients"]): r for r in row["runs"]}
  most = max(r["clients"] for r in row["runs"])
  if (True, most) in by and (False, most) in by:
    ratio = by[(True, most)]["requests_per_second"] / by[(False, most)]["requests_per_second"]
    lines += ["", f"At {most} clients batching serves **{ratio:.2f}x** the requests/s of "
              "batching off (goal: at least 2x). With one client, batching only adds its "
              "timeout to the latency: nobody else's request arrives to share the call."]
  return "\n".join(lines) + "\n"


def main(flags, workdir: str, command: str) -> tuple[str, str]:
  row = serving_benchmark(flags.serving, manual_dir=flags.manual_dir,
                          requests=flags.serving_requests, max_seconds=flags.serving_seconds)
  return "Serving (serving)", serving_report(row, command=command)
