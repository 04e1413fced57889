"""zoo.callbacks on a toy model: timing, time budgets, periodic metrics, the NaN guard."""

import time

import keras
import numpy as np
import pytest

from zoo import callbacks


def _toy(steps_per_execution=1):
  model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
  model.compile("sgd", "mse", steps_per_execution=steps_per_execution)
  return model, np.ones((32, 2), np.float32), np.ones((32, 1), np.float32)


def test_epoch_logs_time_every_epoch_and_keep_the_asked_keys():
  model, x, y = _toy()
  recorder = callbacks.EpochLogs(("loss", "absent"))
  model.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[recorder])
  assert len(recorder.train_seconds) == 3 and min(recorder.train_seconds) > 0
  assert len(recorder.values["loss"]) == 3 and np.isnan(recorder.values["absent"]).all()


class _Slow(keras.callbacks.Callback):
  def on_train_batch_end(self, batch, logs=None):
    time.sleep(0.05)


@pytest.mark.parametrize("steps_per_execution", [1, 5])
def test_time_budget_stops_at_a_step_boundary_after_its_seconds(steps_per_execution):
  model, x, y = _toy(steps_per_execution)
  # Traced first: the budget then times the 0.05 s calls alone, not TensorFlow's tracing
  # (which on a loaded machine alone outlasted the first epoch).
  model.fit(x, y, batch_size=1, epochs=1, verbose=0)
  before = int(model.optimizer.iterations)
  budget = callbacks.TimeBudget(0.6)
  model.fit(x, y, batch_size=1, epochs=100, verbose=0, callbacks=[_Slow(), budget])
  assert budget.elapsed >= 0.6 and 0 < budget.steps < 100 * 32
  # Steps, not calls; with 5 per call the budget outlasts an epoch (7 calls of 0.05 s), so
  # its last, short group (steps 30-31 of 32) is counted too.
  assert budget.steps == int(model.optimizer.iterations) - before
  assert 1 < budget.epochs_started < 100 or steps_per_execution == 1


def test_periodic_metrics_measure_every_n_epochs_and_after_the_last():
  model, x, y = _toy()
  seen = []

  def measure(m):
    seen.append(len(seen))
    return {"score": 1.0, "other": 2.0}

  history = model.fit(x, y, epochs=5, verbose=0,
                      callbacks=[callbacks.PeriodicMetrics(measure, ("score",), every_epochs=2)])
  assert len(seen) == 3  # Epochs 2, 4 and the last (5).
  assert "other" not in history.history


def test_a_nan_loss_stops_inside_the_epoch_with_where_and_when():
  model, x, y = _toy()
  y[:] = np.nan
  with pytest.raises(callbacks.NonFiniteLossError, match=r"Training of toy run stopped: the "
                                                         r"loss became nan at epoch 1, step 1"):
    model.fit(x, y, batch_size=8, epochs=2, verbose=0,
              callbacks=[callbacks.StopOnNonFiniteLoss(where="toy run")])
