"""A gRPC load generator process for the serving benchmark (no TensorFlow import).

  python scripts/benchmarks/grpc_load.py < job.json    # prints one JSON line

job: {"address": "127.0.0.1:8500", "method": "/tensorflow.serving.PredictionService/Predict",
      "payloads": "<file of length-prefixed serialized requests>", "concurrency": 8,
      "requests": 1000, "max_seconds": 60}

`concurrency` calls in flight on one channel (one HTTP/2 connection, as a gRPC client
multiplexes), each sending the next pre-serialized request as soon as its answer is back,
until `requests` were sent or `max_seconds` passed. The requests are serialized once by the
parent and the answers are not parsed (as wrk does for REST), so the client's own cost is
gRPC's, not protobuf's. Prints answered, failed, first-sent-to-last-answered seconds, p50 and
p99 latency (µs) and this process's CPU seconds.
"""

import asyncio
import json
import resource
import struct
import sys
import time

import grpc


def read_payloads(path: str) -> list:
  payloads = []
  with open(path, "rb") as f:
    data = f.read()
  offset = 0
  while offset < len(data):
    (size,) = struct.unpack_from("<I", data, offset)
    payloads.append(data[offset + 4:offset + 4 + size])
    offset += 4 + size
  return payloads


def write_payloads(path: str, payloads) -> None:
  with open(path, "wb") as f:
    for p in payloads:
      f.write(struct.pack("<I", len(p)) + p)


async def run(job: dict) -> dict:
  payloads = read_payloads(job["payloads"])
  options = [("grpc.max_receive_message_length", 2 ** 31 - 1),
             ("grpc.max_send_message_length", 2 ** 31 - 1)]
  latencies, failures, sent = [], [], 0
  async with grpc.aio.insecure_channel(job["address"], options=options) as channel:
    call = channel.unary_unary(job["method"])  # bytes in, bytes out
    deadline = time.monotonic() + job["max_seconds"]

    async def worker():
      nonlocal sent
      while sent < job["requests"] and time.monotonic() < deadline:
        payload = payloads[sent % len(payloads)]
        sent += 1
        started = time.perf_counter()
        try:
          await call(payload, timeout=30)
        except grpc.aio.AioRpcError as e:
          failures.append(e.code().name)
          continue
        latencies.append(time.perf_counter() - started)

    first = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(job["concurrency"])))
    last = time.perf_counter()
  latencies.sort()

  def percentile(q):
    return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1e6 if latencies else 0

  usage = resource.getrusage(resource.RUSAGE_SELF)
  return {"answered": len(latencies), "failed": len(failures),
          "failures": sorted(set(failures)), "seconds": last - first,
          "p50_us": percentile(0.50), "p99_us": percentile(0.99),
          "cpu_seconds": usage.ru_utime + usage.ru_stime}


if __name__ == "__main__":
  print(json.dumps(asyncio.run(run(json.load(sys.stdin)))))
