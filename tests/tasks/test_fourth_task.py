"""A task is one module: a fourth task, defined entirely here, goes through training,
export (SavedModel + TFLite, parity in the card), `zoo.load` and `evaluate_export` with no
edit to the package beyond registering it.

The task regresses each MNIST digit's ink fraction (the share of pixels above 127) from
its pixels: a builder, a pipeline, an evaluator and a front, nothing else.
"""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import zoo
from zoo import artifacts, data, evaluate, export, models, runtime, tasks, train
from zoo.configs import TrainConfig
from zoo.tasks import base

pytestmark = pytest.mark.slow


def ink_regressor(*, input_shape=(28, 28, 1), num_classes=0, name="ink_regressor"):
  """Builder: pixels in [0, 1] -> the ink fraction, float32 [N, 1]."""
  del num_classes  # A regression: the dataset's classes do not matter.
  inputs = keras.Input(input_shape)
  x = keras.layers.Flatten()(inputs)
  x = keras.layers.Dense(32, activation="relu")(x)
  outputs = keras.layers.Dense(1, dtype="float32")(x)
  return keras.Model(inputs, outputs, name=name)


def ink_fraction(images):
  """The target: share of pixels above 127 of uint8 images [N, H, W, C] -> float32 [N]."""
  return tf.reduce_mean(tf.cast(images > 127, tf.float32), axis=[1, 2, 3])


def make_ink_dataset(builder, split, *, batch_size, training, seed=0, epochs=(0,)):
  """Pipeline: read -> cache -> map(targets) -> [per epoch: shuffle] -> batch -> prefetch."""
  ds = builder.as_dataset(split=split, as_supervised=True, shuffle_files=False).cache()
  ds = ds.map(lambda image, _: (data.normalize_images(image), ink_fraction(image[None])[0]))
  if not training:
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
  return data.concatenate_epochs(
      lambda epoch: ds.shuffle(10_000, seed=data.epoch_seed(seed, epoch),
                               reshuffle_each_iteration=False).batch(batch_size, drop_remainder=True),
      epochs).prefetch(tf.data.AUTOTUNE)


class InkMeter(runtime.Predictor):
  """The front: `measure(images uint8 [N, H, W, C]) -> ink fraction float32 [N]`."""

  def __init__(self, backend, card):
    super().__init__(backend, card)
    self.image_shape = tuple(card["image_shape"])

  def measure(self, images):
    images = runtime.check_array("images", images, np.uint8, self.image_shape)
    return self.backend.run(images=images)["ink"].reshape(-1).astype(np.float32)


class InkEvaluator(base.Evaluator):
  """Mean absolute error of `predict(uint8 images) -> ink fractions` on a split."""

  def __init__(self, builder, split):
    self.dataset = builder.as_dataset(split=split, as_supervised=True,
                                      shuffle_files=False).batch(500)

  def predictions(self, predict):
    out, truth = [], []
    for images, _ in tfds.as_numpy(self.dataset):
      out.append(predict(images))
      truth.append(ink_fraction(images).numpy())
    return {"ink": np.concatenate(out), "truth": np.concatenate(truth)}

  def metrics(self, predictions):
    return {"num_examples": int(len(predictions["truth"])),
            "mae": float(np.mean(np.abs(predictions["ink"] - predictions["truth"])))}

  def compare(self, reference, candidate):
    return {"mae": candidate.metrics["mae"],
            "max_abs_diff": float(np.max(np.abs(candidate.predictions["ink"]
                                                - reference.predictions["ink"])))}


class InkFraction(base.Task):
  name = "ink_fraction"
  tflite_variants = ("float32",)
  front = InkMeter
  export_options = {"max_abs_diff": 1e-4}

  def datasets(self, builder, config, epochs=(0,)):
    return (make_ink_dataset(builder, config.train_split, batch_size=config.batch_size,
                             training=True, seed=config.seed, epochs=epochs),
            make_ink_dataset(builder, config.eval_split, batch_size=config.eval_batch_size,
                             training=False))

  def compile(self, model, config, make_optimizer, jit_compile, steps_per_execution=1):
    model.compile(optimizer=make_optimizer(), loss="mse", jit_compile=jit_compile,
                  steps_per_execution=steps_per_execution)

  def card_fields(self, model, config, info):
    return {"image_shape": list(info.image_shape)}

  def _signature(self, model, info):
    pixels = artifacts.pixel_contract(info.image_shape)
    return base.Signature(
        lambda images: {"ink": model(data.normalize_images(images), training=False)[:, 0]},
        [tf.TensorSpec([None, *info.image_shape], tf.uint8, name="images")],
        {"images": pixels}, {"ink": {"dtype": "float32", "shape": [-1]}})

  def signatures(self, model, config, info):
    return {"serving_default": self._signature(model, info)}

  def tflite_signature(self, model, config, info):
    return self._signature(model, info)

  def evaluator(self, config, builder, split, **options):
    return InkEvaluator(builder, split)

  def predict_fn(self, front):
    return front.measure

  def checks(self, card, *, max_abs_diff, **options):
    return [{"check": f"{key} max |ink diff| <= {max_abs_diff}", "value": p["max_abs_diff"],
             "passed": p["max_abs_diff"] <= max_abs_diff} for key, p in card["parity"].items()]

  def headline(self, metrics):
    return f"{metrics['split']} ink fraction MAE {metrics['mae']:.4f}"


@pytest.fixture
def registered(monkeypatch):
  """The only edit outside this file: registering the task and its builder."""
  monkeypatch.setitem(tasks.TASKS, "ink_fraction", InkFraction())
  monkeypatch.setitem(models.MODELS, "ink_regressor", ink_regressor)


def test_a_fourth_task_trains_exports_loads_and_evaluates(registered, real_mnist_data_dir,
                                                          tmp_path):
  config = TrainConfig(model="ink_regressor", task="ink_fraction", recipe="ink_mnist",
                       train_split="train[:4000]", eval_split="test[:500]", batch_size=64,
                       eval_batch_size=250, train_epochs=3, learning_rate=3e-3,
                       log_images=0)
  run = str(tmp_path / "run")
  metrics = train.train_and_evaluate(config, run, data_dir=real_mnist_data_dir)
  # It learned: the best constant guess (the mean, 0.138) is 0.036 off on these 500 digits;
  # this run is ~0.014 off.
  assert metrics["task"] == "ink_fraction" and metrics["num_examples"] == 500
  assert metrics["mae"] < 0.025, metrics

  path = export.export_run(run, export_dir=str(tmp_path / "exports"),
                           data_dir=real_mnist_data_dir)
  card = runtime.read_card(path)
  files = {"saved_model", "float32", "onnx"}
  assert card["task"] == "ink_fraction" and set(card["files"]) == set(card["parity"]) == files
  assert card["metrics"]["mae"] == pytest.approx(metrics["mae"], abs=1e-6)
  assert len(card["checks"]) == 3 and all(c["passed"] for c in card["checks"])
  assert "PASS" in export.parity_table(card)

  images = data.split_arrays(data.prepare_builder("mnist", data_dir=real_mnist_data_dir),
                             "test[:8]")[0]
  truth = ink_fraction(images).numpy()
  for key, which in (("saved_model", path),
                     ("float32", os.path.join(path, "model_float32.tflite")),
                     ("onnx", os.path.join(path, "model.onnx"))):
    meter = zoo.load(which)
    assert isinstance(meter, InkMeter)
    assert np.abs(meter.measure(images) - truth).max() < 0.1
    report = evaluate.evaluate_export(which, data_dir=real_mnist_data_dir)
    assert report["task"] == "ink_fraction"
    assert report["mae"] == pytest.approx(card["parity"][key]["mae"], abs=1e-6)
