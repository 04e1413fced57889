"""Server-side batching: concurrent requests for one signature become one model call.

What TensorFlow Serving's `--enable_batching` does, in asyncio: requests wait in a bounded
queue; a batch is run when it holds `max_batch_size` rows or when its oldest request has
waited `timeout_s`, whichever comes first. The model runs in a worker thread, never on
the event loop; while it runs, the next batch fills. Only requests whose inputs agree in
everything but the batch dimension are concatenated (a detector fed images of different
sizes gets one call per size). If a batched call fails on bad input, each request in it is
rerun alone, so one bad request never fails the others.

  batcher = Batcher(run, max_batch_size=32, timeout_s=0.002, max_enqueued_rows=1024,
                    executor=pool)
  outputs = await batcher.submit({"images": array})    # this request's rows only
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import dataclasses
from typing import Callable, Mapping

import numpy as np

from zoo import errors
from zoo.serving.json_tensor import RequestError


def batch_key(inputs: Mapping[str, np.ndarray]) -> tuple:
  """Requests with equal keys can be concatenated along the first dimension."""
  return tuple(sorted((k, v.dtype.str, v.shape[1:]) for k, v in inputs.items()))


def concatenate(items: list) -> dict:
  return {k: np.concatenate([i[k] for i in items]) for k in items[0]}


def split(outputs: Mapping[str, np.ndarray], sizes: list) -> list:
  """Batched outputs -> one dict per request, by the requests' row counts."""
  bounds = np.cumsum(sizes)[:-1]
  parts = {k: np.split(v, bounds) for k, v in outputs.items()}
  return [{k: parts[k][i] for k in outputs} for i in range(len(sizes))]


@dataclasses.dataclass
class _Pending:
  key: tuple
  inputs: dict
  rows: int
  future: asyncio.Future
  enqueued: float


@dataclasses.dataclass
class Stats:
  """Counts since start: model calls, rows through them, and the largest batch."""
  calls: int = 0
  rows: int = 0
  largest: int = 0

  def add(self, rows: int) -> None:
    self.calls += 1
    self.rows += rows
    self.largest = max(self.largest, rows)

  def as_dict(self) -> dict:
    mean = self.rows / self.calls if self.calls else 0.0
    return {"model_calls": self.calls, "rows": self.rows, "largest_batch": self.largest,
            "mean_batch": round(mean, 3)}


class Batcher:
  """Gathers concurrent calls of one `run(inputs) -> outputs` function into batches.

  Args:
    run: the model call (blocking); takes and returns dicts of arrays whose first
      dimension is the batch.
    max_batch_size: rows per model call at most (a larger request runs alone).
    timeout_s: longest a request waits for others to join its batch.
    max_enqueued_rows: rows waiting at most; past it, requests are refused with 503
      (TensorFlow Serving's "queue is full": the client should retry later).
    executor: the threads model calls run in.
    observe: called after each model call with its rows and each request's wait in the
      queue, seconds (`observe(rows, waits)`; for metrics).
  """

  def __init__(self, run: Callable[[dict], dict], *, max_batch_size: int, timeout_s: float,
               max_enqueued_rows: int, executor: concurrent.futures.Executor,
               observe: Callable[[int, list], None] | None = None):
    if max_batch_size < 1 or timeout_s < 0 or max_enqueued_rows < 1:
      raise errors.InvalidValueError(
          f"Invalid batching options: max_batch_size={max_batch_size} (>= 1), "
          f"timeout_s={timeout_s} (>= 0), max_enqueued_rows="
          f"{max_enqueued_rows} (>= 1).")
    self._run = run
    self.max_batch_size = max_batch_size
    self.timeout_s = timeout_s
    self.max_enqueued_rows = max_enqueued_rows
    self._executor = executor
    self._observe = observe
    self._queue: collections.deque[_Pending] = collections.deque()
    self._waiting_rows = 0
    self._wakeup: asyncio.Event | None = None
    self._worker: asyncio.Task | None = None
    self.stats = Stats()

  async def submit(self, inputs: dict) -> dict:
    """Runs this request's inputs (possibly with others'); returns its outputs only."""
    loop = asyncio.get_running_loop()
    rows = int(next(iter(inputs.values())).shape[0])
    if self._waiting_rows + rows > self.max_enqueued_rows:
      raise RequestError("The batch scheduling queue to which this task was submitted is "
                         f"full ({self._waiting_rows} rows waiting, limit "
                         f"{self.max_enqueued_rows}); retry later.", status=503)
    if self._worker is None or self._worker.done():
      self._wakeup = asyncio.Event()
      self._worker = loop.create_task(self._work())
    future = loop.create_future()
    self._queue.append(_Pending(batch_key(inputs), inputs, rows, future, loop.time()))
    self._waiting_rows += rows
    self._wakeup.set()
    return await future

  def _take(self) -> list:
    """The oldest request and the queued requests that fit in its batch, in order."""
    first = self._queue.popleft()
    batch, rows, kept = [first], first.rows, collections.deque()
    while self._queue:
      item = self._queue.popleft()
      if item.key == first.key and rows + item.rows <= self.max_batch_size:
        batch.append(item)
        rows += item.rows
      else:
        kept.append(item)
    self._queue.extendleft(reversed(kept))
    self._waiting_rows -= rows
    return batch

  def _ready_rows(self) -> int:
    first = self._queue[0]
    return sum(i.rows for i in self._queue if i.key == first.key)

  async def _work(self) -> None:
    loop = asyncio.get_running_loop()
    while True:
      while not self._queue:
        self._wakeup.clear()
        await self._wakeup.wait()
      # Wait for the batch to fill, at most until its oldest request's deadline.
      deadline = self._queue[0].enqueued + self.timeout_s
      while self._ready_rows() < self.max_batch_size:
        remaining = deadline - loop.time()
        if remaining <= 0:
          break
        self._wakeup.clear()
        try:
          await asyncio.wait_for(self._wakeup.wait(), remaining)
        except TimeoutError:
          break
      batch = self._take()
      await self._execute(batch)

  async def _execute(self, batch: list) -> None:
    loop = asyncio.get_running_loop()
    rows = sum(i.rows for i in batch)
    started = loop.time()
    try:
      inputs = batch[0].inputs if len(batch) == 1 else concatenate([i.inputs for i in batch])
      outputs = await loop.run_in_executor(self._executor, self._run, inputs)
      self.stats.add(rows)
      if self._observe is not None:
        self._observe(rows, [started - i.enqueued for i in batch])
      parts = [outputs] if len(batch) == 1 else split(outputs, [i.rows for i in batch])
    except RequestError as e:
      if len(batch) > 1:  # Someone's bad input: rerun each alone so only it fails.
        for item in batch:
          await self._execute([item])
        return
      _resolve(batch[0].future, error=e)
      return
    except Exception as e:  # noqa: BLE001 - handed to the waiting request, not lost.
      for item in batch:
        _resolve(item.future, error=e)
      return
    for item, part in zip(batch, parts):
      _resolve(item.future, result=part)


def _resolve(future: asyncio.Future, result=None, error=None) -> None:
  if future.done():  # The client went away; nobody is waiting.
    return
  if error is not None:
    future.set_exception(error)
  else:
    future.set_result(result)
