"""The generation task end to end on mock data: train, TensorBoard, kill and resume, evaluate,
export (SavedModel + TFLite), load and generate; and the FID of zoo.quality on real data."""

import json
import os
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from tests import recipes
from tests.conftest import REPO
from zoo import evaluate, export, rundir, runtime, train
from zoo.models import gan
from zoo.tasks import generation


class _Iterations(keras.callbacks.Callback):
  """Records both optimizers' step counters when training starts (after any restore)."""

  def on_train_begin(self, logs=None):
    self.at_start = (int(self.model.d_optimizer.iterations),
                     int(self.model.g_optimizer.iterations))


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory):
  """A finished tiny conditional GAN run (3 epochs of 8 steps), killed once and resumed."""
  import tensorflow_datasets as tfds
  from zoo.data import tfds_input
  tmp_path = tmp_path_factory.mktemp("gan")
  manual = tmp_path / "manual"
  manual.mkdir()
  for name in tfds_input.EXPECTED_FILES["mnist"]:
    (manual / name).write_bytes(b"")
  with tfds.testing.mock_data(num_examples=64):
    yield _train_gan_run(tmp_path, str(manual))


def _train_gan_run(tmp_path, mock_manual_dir):
  config = recipes.dcgan_tiny(conditional=True).replace(train_epochs=3)
  kwargs = dict(data_dir=str(tmp_path / "tfds"), manual_dir=mock_manual_dir)
  model_dir = str(tmp_path / "run")
  with pytest.raises(train.TrainingInterrupted, match=r"Stopped at epoch 3/3 \(2 completed"):
    train.train_and_evaluate(config, model_dir, extra_callbacks=[recipes.Interrupt(2)], **kwargs)
  iterations = _Iterations()
  with warnings.catch_warnings(record=True) as resume_warnings:
    warnings.simplefilter("always")
    metrics = train.train_and_evaluate(config, model_dir, extra_callbacks=[iterations],
                                       **kwargs)
  return {"dir": model_dir, "metrics": metrics, "iterations": iterations, "kwargs": kwargs,
          "config": config, "resume_warnings": [str(w.message) for w in resume_warnings]}


def test_killed_gan_run_resumes_both_optimizers(gan_run):
  steps = 64 // 8
  # Both optimizers' states came back from the backup: they continue from 2 epochs.
  assert gan_run["iterations"].at_start == (2 * steps, 2 * steps)
  assert gan_run["metrics"]["epochs_run_this_invocation"] == 1
  # Nothing Keras could not restore (an unused model-level optimizer used to be warned of).
  assert not [w for w in gan_run["resume_warnings"] if "Skipping variable loading" in w]
  _, model = rundir.load_run(gan_run["dir"])
  assert isinstance(model, gan.GAN) and model.conditional


def test_gan_run_metrics_and_tensorboard(gan_run):
  m = gan_run["metrics"]
  assert m["task"] == "generation" and m["num_samples"] == 64
  assert np.isfinite(m["fid"]) and m["fid"] >= 0
  assert len(m["label_agreement"]) == 10 and len(m["class_coverage"]) == 10
  assert m["feature_model"]["name"] == "mnist_cnn"
  from tensorboard.backend.event_processing import plugin_event_accumulator
  log_dir = os.path.join(gan_run["dir"], rundir.TENSORBOARD)
  samples = plugin_event_accumulator.EventAccumulator(os.path.join(log_dir, "samples"))
  samples.Reload()
  grids = samples.Tensors("samples")
  assert [e.step for e in grids] == [0, 1, 2]  # One grid per epoch, also after the resume.
  scalars = plugin_event_accumulator.EventAccumulator(os.path.join(log_dir, "train"))
  scalars.Reload()
  tags = set(scalars.Tags()["tensors"])
  for tag in ("epoch_d_loss", "epoch_g_loss", "epoch_d_real", "epoch_d_fake", "epoch_fid",
              "epoch_coverage_min", "epoch_mean_confidence", "epoch_label_agreement_min",
              "epoch_d_learning_rate", "epoch_g_learning_rate"):
    assert tag in tags, sorted(tags)
  # The two optimizers' own rates (constant in this recipe), one per epoch.
  for tag in ("epoch_d_learning_rate", "epoch_g_learning_rate"):
    rates = [float(tf.make_ndarray(e.tensor_proto)) for e in scalars.Tensors(tag)]
    assert rates == pytest.approx([gan_run["config"].learning_rate] * 3), (tag, rates)


def test_evaluate_export_load_and_generate(gan_run, tmp_path):
  again = evaluate.evaluate_run(gan_run["dir"], **gan_run["kwargs"])
  assert again["fid"] == pytest.approx(gan_run["metrics"]["fid"], rel=1e-4)  # Same samples.
  path = export.export_run(gan_run["dir"], export_dir=str(tmp_path / "exports"),
                           **gan_run["kwargs"])
  card = runtime.read_card(path)
  assert card["task"] == "generation" and card["conditional"] and card["latent_dim"] == 8
  assert set(card["files"]) == {"saved_model", "float32", "float16", "onnx"}
  assert all(c["passed"] for c in card["checks"])
  assert card["parity"]["float32"]["max_abs_pixel_diff"] <= 2
  assert card["metrics"]["feature_model"]["name"] == "mnist_cnn"
  assert card["metrics"]["fid"] == pytest.approx(gan_run["metrics"]["fid"], rel=1e-3)

  generator = zoo.load(path)
  assert isinstance(generator, generation.Generator)
  seeds, labels = [5, 6, 5], [7, 7, 7]
  first = generator.generate_seeds(seeds, labels)
  assert first.dtype == np.uint8 and first.shape == (3, 28, 28, 1)
  np.testing.assert_array_equal(first[0], first[2])  # Same seed, same image...
  assert not np.array_equal(first[0], first[1])  # ...another seed, another one.
  np.testing.assert_array_equal(zoo.load(path).generate_seeds(seeds, labels), first)
  # The SavedModel's generate(seed) == serving_default(seed_latents(seed)) == TFLite.
  latent = gan.seed_latents(seeds, 8).numpy()
  np.testing.assert_array_equal(generator.generate(latent, labels), first)
  tflite = zoo.load(os.path.join(path, "model_float32.tflite"))
  assert np.abs(tflite.generate_seeds(seeds, labels).astype(int) - first).max() <= 2
  for bad, message in [(dict(seeds=[1], labels=None), "this generator is conditional"),
                       (dict(seeds=[1], labels=[10]), r"expected 1 integers in \[0, 9\]")]:
    with pytest.raises(ValueError, match=message):
      generator.generate_seeds(**bad)

  report = evaluate.evaluate_export(path, **gan_run["kwargs"])
  assert report["task"] == "generation" and report["fid"] == pytest.approx(
      card["metrics"]["fid"], rel=1e-4)

  # scripts/generate.py: "ten 7s" as a PNG grid; a bad request is refused with a message.
  out = tmp_path / "sevens.png"
  run = subprocess.run([sys.executable, str(REPO / "scripts" / "generate.py"), f"--model={path}",
                        "--digit=7", "--count=10", f"--output={out}"],
                       capture_output=True, text=True, cwd=REPO)
  assert run.returncode == 0, run.stderr
  report = json.loads(run.stdout)
  assert report["labels"] == ["7"] * 10 and report["seeds"] == list(range(10))
  png = tf.io.decode_png(out.read_bytes()).numpy()
  assert png.shape == (28, 28 * 10, 1)
  np.testing.assert_array_equal(png[:, 28 * 5:28 * 6], generator.generate_seeds([5], [7])[0])
  bad = subprocess.run([sys.executable, str(REPO / "scripts" / "generate.py"),
                        f"--model={path}", "--digit=12"], capture_output=True, text=True,
                       cwd=REPO)
  assert bad.returncode == 1 and "Invalid value for `labels`" in bad.stderr


def test_unknown_task_knob_fails_before_any_work(tmp_path):
  config = recipes.dcgan_tiny().replace(task_kwargs={"fid_samples": 10})
  with pytest.raises(ValueError, match=r"unknown knob\(s\) \['fid_samples'\] for task "
                                       r"'generation'; valid knobs: \["):
    train.train_and_evaluate(config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()


def test_long_generation_logs_progress_and_the_same_images(monkeypatch, caplog):
  """A long evaluation says how far it is (10,000 TFLite samples take a minute or more),
  and generating in chunks changes no image."""
  import logging
  from zoo.tasks import generation as generation_task
  evaluator = generation_task.QualityEvaluator.__new__(generation_task.QualityEvaluator)
  evaluator.seeds, evaluator.labels = np.arange(25), np.arange(25) % 10
  calls = []

  def predict(seeds, labels):
    calls.append((len(seeds), list(labels[:1])))
    return np.stack([np.full((2, 2, 1), s, np.uint8) for s in seeds])

  monkeypatch.setattr(generation_task, "PROGRESS_CHUNK", 10)
  monkeypatch.setattr(generation_task, "PROGRESS_EVERY_S", 0.0)
  with caplog.at_level(logging.INFO, logger="zoo"):
    images = evaluator.predictions(predict)
  assert calls == [(10, [0]), (10, [0]), (5, [0])]  # Each chunk with its own labels.
  np.testing.assert_array_equal(images[:, 0, 0, 0], np.arange(25))
  lines = [r.getMessage() for r in caplog.records if r.name == "zoo"]
  assert lines[0].startswith("Generated 10/25 images (") and "s left)" in lines[0]
  assert lines[-1].startswith("Generated 25 images (")
