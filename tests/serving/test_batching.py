"""The batcher on a fake model: what it gathers, what it keeps apart, what it refuses."""

import asyncio
import concurrent.futures
import threading

import numpy as np
import pytest

from zoo.serving.batching import Batcher
from zoo.serving.json_tensor import RequestError


class FakeModel:
  """Doubles `x`; records the batch sizes it was called with; refuses negative input."""

  def __init__(self):
    self.calls = []
    self.lock = threading.Lock()

  def __call__(self, inputs):
    x = inputs["x"]
    with self.lock:
      self.calls.append(len(x))
    if (x < 0).any():
      raise RequestError("negative input")
    return {"y": 2 * x, "n": np.arange(len(x))}


def _run(coroutine):
  return asyncio.run(coroutine)


@pytest.fixture
def pool():
  with concurrent.futures.ThreadPoolExecutor(2) as executor:
    yield executor


def _batcher(model, pool, **kwargs):
  options = dict(max_batch_size=8, timeout_s=0.05, max_enqueued_rows=64, executor=pool)
  options.update(kwargs)
  return Batcher(model, **options)


def test_concurrent_requests_share_one_call_and_get_their_own_rows(pool):
  model = FakeModel()

  async def main():
    batcher = _batcher(model, pool)
    requests = [{"x": np.full((1, 3), i, np.float32)} for i in range(8)]
    return batcher, await asyncio.gather(*(batcher.submit(r) for r in requests))

  batcher, answers = _run(main())
  assert model.calls == [8]
  for i, answer in enumerate(answers):
    np.testing.assert_array_equal(answer["y"], np.full((1, 3), 2 * i))
  assert batcher.stats.as_dict() == {"model_calls": 1, "rows": 8, "largest_batch": 8,
                                     "mean_batch": 8.0}


def test_batches_never_exceed_max_batch_size_and_a_lone_request_waits_only_the_timeout(pool):
  model = FakeModel()

  async def main():
    batcher = _batcher(model, pool, max_batch_size=4)
    await asyncio.gather(*(batcher.submit({"x": np.zeros((1, 2))}) for _ in range(10)))
    loop = asyncio.get_running_loop()
    start = loop.time()
    await batcher.submit({"x": np.zeros((1, 2))})
    return loop.time() - start

  waited = _run(main())
  assert max(model.calls[:-1]) <= 4 and sum(model.calls[:-1]) == 10
  assert model.calls[-1] == 1 and 0.04 < waited < 1.0


def test_inputs_of_different_shapes_are_not_concatenated(pool):
  model = FakeModel()

  async def main():
    batcher = _batcher(model, pool)
    return await asyncio.gather(batcher.submit({"x": np.zeros((1, 2))}),
                                batcher.submit({"x": np.zeros((2, 5))}),
                                batcher.submit({"x": np.zeros((1, 2))}))

  answers = _run(main())
  assert sorted(model.calls) == [2, 2]
  assert [a["y"].shape for a in answers] == [(1, 2), (2, 5), (1, 2)]


def test_one_bad_request_fails_alone(pool):
  model = FakeModel()

  async def main():
    batcher = _batcher(model, pool)
    return await asyncio.gather(batcher.submit({"x": np.ones((1, 2))}),
                                batcher.submit({"x": -np.ones((1, 2))}),
                                batcher.submit({"x": np.ones((2, 2))}),
                                return_exceptions=True)

  good, bad, good2 = _run(main())
  assert isinstance(bad, RequestError) and bad.message == "negative input"
  np.testing.assert_array_equal(good["y"], 2 * np.ones((1, 2)))
  np.testing.assert_array_equal(good2["n"], [0, 1])  # Its own rows, renumbered per run.


def test_a_full_queue_refuses_with_503(pool):
  release = threading.Event()

  def slow(inputs):
    release.wait(10)
    return {"y": inputs["x"]}

  async def main():
    batcher = _batcher(slow, pool, max_batch_size=2, max_enqueued_rows=4, timeout_s=0.0)
    first = asyncio.ensure_future(batcher.submit({"x": np.zeros((2, 1))}))
    await asyncio.sleep(0.05)  # The first batch is running; the next 4 rows wait.
    queued = [asyncio.ensure_future(batcher.submit({"x": np.zeros((2, 1))})) for _ in range(2)]
    await asyncio.sleep(0.01)
    with pytest.raises(RequestError) as refused:
      await batcher.submit({"x": np.zeros((1, 1))})
    release.set()
    await asyncio.gather(first, *queued)
    return refused.value

  refused = _run(main())
  assert refused.status == 503 and "full" in refused.message


def test_invalid_options_are_refused(pool):
  with pytest.raises(ValueError, match="max_batch_size"):
    Batcher(FakeModel(), max_batch_size=0, timeout_s=0.01, max_enqueued_rows=4, executor=pool)
