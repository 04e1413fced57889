"""The server's Prometheus metrics, under TensorFlow Serving's names.

  metrics = Metrics()
  metrics.request("mnist_cnn", "predict", "GRPC", "OK", seconds=0.004)
  text = metrics.exposition()      # GET /monitoring/prometheus/metrics

TensorFlow Serving exports TensorFlow's monitoring metrics with `/` turned into `:`:

  :tensorflow:serving:request_count{model_name, status}          counter
  :tensorflow:serving:request_latency{model_name, API, entrypoint}  histogram, µs
  :tensorflow:serving:batching_session:input_batch_size{model_name}  histogram, rows
  :tensorflow:serving:batching_session:processed_batch_size{model_name}  histogram, rows
  :tensorflow:serving:batching_session:queuing_latency{model_name}  histogram, µs
  :tensorflow:cc:saved_model:load_attempt_count{model_path, status}  counter
  :tensorflow:cc:saved_model:load_latency{model_path}              counter, µs in total

`status` is the gRPC status name (`OK`, `INVALID_ARGUMENT`, ...), `API` the call
(`predict`, `GetModelMetadata`, ...), `entrypoint` `REST` or `GRPC`. Request latency has
TensorFlow Serving's buckets (10 µs times 1.8^k, 33 of them).

prometheus-client keeps the numbers and writes the text format. Its counters are exposed
as `<name>_total` (the OpenMetrics convention); TensorFlow Serving's are not, and
dashboards query its names, so `exposition()` writes counters under their own name (typed
`untyped`, which Prometheus scrapes and `rate()`s like a counter), and leaves out
prometheus-client's `_created` series, which TensorFlow Serving does not have.
"""

from __future__ import annotations

import prometheus_client
from prometheus_client import core

PATH = "/monitoring/prometheus/metrics"
CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST

# TensorFlow Serving's request latency buckets: Buckets::Exponential(10, 1.8, 33), µs.
LATENCY_BUCKETS_US = tuple(10 * 1.8 ** k for k in range(33))
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
QUEUE_BUCKETS_US = tuple(100 * 2 ** k for k in range(16))


class Metrics:
  """Every metric of one server (its own registry: two servers in one process, as in the
  tests, never mix their counts)."""

  def __init__(self):
    self.registry = prometheus_client.CollectorRegistry(auto_describe=True)
    r = self.registry
    self.request_count = prometheus_client.Counter(
        ":tensorflow:serving:request_count", "The number of requests.",
        ["model_name", "status"], registry=r)
    self.request_latency = prometheus_client.Histogram(
        ":tensorflow:serving:request_latency",
        "Distribution of wall time (in microseconds) for TensorFlow Serving requests.",
        ["model_name", "API", "entrypoint"], buckets=LATENCY_BUCKETS_US, registry=r)
    self.input_batch_size = prometheus_client.Histogram(
        ":tensorflow:serving:batching_session:input_batch_size",
        "Rows of each request entering the batching queue.", ["model_name"],
        buckets=BATCH_BUCKETS, registry=r)
    self.processed_batch_size = prometheus_client.Histogram(
        ":tensorflow:serving:batching_session:processed_batch_size",
        "Rows of each batched model call.", ["model_name"], buckets=BATCH_BUCKETS,
        registry=r)
    self.queuing_latency = prometheus_client.Histogram(
        ":tensorflow:serving:batching_session:queuing_latency",
        "Distribution of wall time spent (in microseconds) in the batching queue.",
        ["model_name"], buckets=QUEUE_BUCKETS_US, registry=r)
    self.load_attempt_count = prometheus_client.Counter(
        ":tensorflow:cc:saved_model:load_attempt_count",
        "The number of times a SavedModel was attempted to be loaded.",
        ["model_path", "status"], registry=r)
    self.load_latency = prometheus_client.Counter(
        ":tensorflow:cc:saved_model:load_latency",
        "Latency in microseconds for SavedModels that were successfully loaded.",
        ["model_path"], registry=r)

  def request(self, model_name: str, api: str, entrypoint: str, status: str,
              seconds: float) -> None:
    self.request_count.labels(model_name, status).inc()
    self.request_latency.labels(model_name, api, entrypoint).observe(seconds * 1e6)

  def batch(self, model_name: str, rows: int, waits_s: list) -> None:
    """One batched model call of `rows` rows; each request's time in the queue."""
    self.processed_batch_size.labels(model_name).observe(rows)
    for wait in waits_s:
      self.queuing_latency.labels(model_name).observe(wait * 1e6)

  def enqueued(self, model_name: str, rows: int) -> None:
    self.input_batch_size.labels(model_name).observe(rows)

  def load(self, path: str, ok: bool, seconds: float) -> None:
    self.load_attempt_count.labels(path, "success" if ok else "fail").inc()
    if ok:
      self.load_latency.labels(path).inc(seconds * 1e6)

  def requests_by_status(self) -> dict:
    """`{status: count}` over every model (the counters `/healthz` shows)."""
    totals = {}
    for metric in self.request_count.collect():
      for sample in metric.samples:
        if sample.name.endswith("_total"):
          status = sample.labels["status"]
          totals[status] = totals.get(status, 0) + int(sample.value)
    return totals

  def exposition(self) -> bytes:
    """The Prometheus text format, counters under TensorFlow Serving's names."""
    return prometheus_client.generate_latest(_TFServingNames(self.registry))


class _TFServingNames:
  """A collector re-emitting `registry`'s metrics with counters as TensorFlow Serving names
  them (`name`, not `name_total`; no `name_created`)."""

  def __init__(self, registry):
    self.registry = registry

  def collect(self):
    for metric in self.registry.collect():
      counter = metric.type == "counter"
      out = core.Metric(metric.name, metric.documentation,
                        "unknown" if counter else metric.type)
      for sample in metric.samples:
        if sample.name.endswith("_created"):
          continue
        out.add_sample(metric.name if counter else sample.name, sample.labels, sample.value)
      yield out
