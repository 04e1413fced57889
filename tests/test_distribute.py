"""The strategy helper in one process: names, TF_CONFIG errors, and `fit()` under
MirroredStrategy on two logical CPUs (set up in conftest) against the same run without."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests import recipes
from zoo import distribute, registry, train


def test_mirrored_without_gpu_takes_every_logical_cpu():
  strategy = distribute.get_strategy("mirrored")
  assert strategy.num_replicas_in_sync == 2
  assert distribute.is_chief(strategy)


@pytest.mark.parametrize("name, replicas", [("default", 1), ("one_device", 1), ("auto", 1)])
def test_single_device_strategies(name, replicas):
  strategy = distribute.get_strategy(name)
  assert strategy.num_replicas_in_sync == replicas
  assert distribute.worker_dir("runs/x", strategy) == "runs/x"


def test_unknown_strategy_lists_the_valid_ones():
  with pytest.raises(ValueError, match=r"Invalid value for `strategy`: expected one of "
                                       r"\['auto', 'default'.*Received: 'horovod'"):
    distribute.get_strategy("horovod")


@pytest.mark.parametrize("tf_config, message", [
    (None, r"multi_worker_mirrored needs the TF_CONFIG environment variable"),
    ("{not json", r"Invalid value for `TF_CONFIG`: expected JSON like .*Received: '\{not json'"),
    ('{"cluster": {"worker": ["a:1"]}}', r"Invalid value for `TF_CONFIG`.*KeyError: 'task'"),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}',
     r"task index 2 is not in 0\.\.1 \(the cluster lists 2 workers\)"),
])
def test_bad_tf_config_is_refused_before_any_waiting(tf_config, message, monkeypatch):
  if tf_config is None:
    monkeypatch.delenv("TF_CONFIG", raising=False)
  else:
    monkeypatch.setenv("TF_CONFIG", tf_config)
  with pytest.raises(ValueError, match=message):
    distribute.get_strategy("multi_worker_mirrored")


def test_global_batch_must_split_over_the_replicas(mock_mnist, mock_manual_dir, tmp_path):
  config = recipes.mnist_mlp_tiny().replace(strategy="mirrored", batch_size=7)
  with pytest.raises(ValueError, match=r"Invalid value for `batch_size`: expected a positive "
                                       r"multiple of the number of replicas \(2\)\. Received: "
                                       r"batch_size=7"):
    train.train_and_evaluate(config, str(tmp_path / "run"), data_dir=str(tmp_path / "tfds"),
                             manual_dir=mock_manual_dir)
  assert not (tmp_path / "run").exists()


def test_steps_per_execution_is_one_where_keras_multi_step_loop_fails():
  """Keras 3.15's multi-step loop fails under MirroredStrategy ("You must feed a value for
  placeholder tensor 'while/.../while/cond/Placeholder_1'", seen with TF 2.21)."""
  assert distribute.steps_per_execution(distribute.get_strategy("mirrored"), 32) == 1
  assert distribute.steps_per_execution(distribute.get_strategy("default"), 32) == 32


def test_shard_inputs_sets_the_data_policy():
  ds = distribute.shard_inputs(tf.data.Dataset.range(4))
  assert (ds.options().experimental_distribute.auto_shard_policy
          == tf.data.experimental.AutoShardPolicy.DATA)


def test_mirrored_fit_trains_what_the_same_run_without_a_strategy_trains(
    mock_mnist, mock_manual_dir, tmp_path):
  """Two replicas, each half of every global batch, gradients summed: the same weights as one
  device on the whole batch. (Without BatchNorm and dropout, whose statistics and masks are
  per replica.)"""
  config = registry.get_config("mnist_mlp").replace(
      train_epochs=2, min_train_steps=0, batch_size=16, eval_batch_size=16, warmup_epochs=0.0,
      model_kwargs={"hidden_units": (32,), "batch_norm": False, "dropout": 0.0})
  kwargs = dict(data_dir=str(tmp_path / "tfds"), manual_dir=mock_manual_dir)
  weights = {}
  for strategy in ("default", "mirrored"):
    keras.backend.clear_session()
    model_dir = tmp_path / strategy
    train.train_and_evaluate(config.replace(strategy=strategy), str(model_dir), **kwargs)
    card = json.loads((model_dir / "run_card.json").read_text())
    assert card["num_replicas"] == (2 if strategy == "mirrored" else 1)
    weights[strategy] = keras.saving.load_model(model_dir / train.CHECKPOINT).get_weights()
  for a, b in zip(weights["default"], weights["mirrored"]):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  assert not np.allclose(weights["default"][0], 0.0)


def test_a_second_mirrored_strategy_in_the_same_process_trains_another_model():
  """TensorFlow's collective executor remembers each collective key for the life of the
  process; a second strategy that reused the first one's keys aborted its first all-reduce
  ("Shape mismatch in the collective instance 100")."""
  for width in (3, 5):
    strategy = distribute.get_strategy("mirrored")
    with strategy.scope():
      model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(width),
                                keras.layers.Dense(1)])
      model.compile(optimizer="sgd", loss="mse")
    ds = tf.data.Dataset.from_tensor_slices((np.ones((8, 4), "float32"),
                                             np.ones((8, 1), "float32"))).batch(4)
    history = model.fit(ds, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
