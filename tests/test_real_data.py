"""Quality on the real MNIST (../shared/data/mnist): cheap enough for CI.

The full-length figures (>= 98.3 % MLP, >= 99.4 % CNN, over several seeds) are benchmarks:
BENCHMARKS.md. Here the recipes run as `--epochs=1` runs them: a shortened run must still be
a good run (its warmup shrinks with it and its schedule decays).
"""

import json

import pytest

from zoo import evaluate, registry, train

pytestmark = pytest.mark.slow


def _one_epoch_run(recipe, data_dir, tmp_path_factory):
  """The real recipe with only its epochs changed, exactly what `--epochs=1` does."""
  config = registry.get_config(recipe).replace(train_epochs=1, min_train_steps=0)
  model_dir = tmp_path_factory.mktemp(f"{recipe}_run")
  metrics = train.train_and_evaluate(config, str(model_dir), data_dir=data_dir)
  return model_dir, metrics


@pytest.fixture(scope="module")
def short_mlp_run(real_mnist_data_dir, tmp_path_factory):
  """`mnist_mlp --epochs=1` (about 20 s on 2 CPU cores)."""
  return _one_epoch_run("mnist_mlp", real_mnist_data_dir, tmp_path_factory)


def test_mnist_mlp_with_one_epoch_reaches_97_percent(short_mlp_run):
  model_dir, metrics = short_mlp_run
  assert metrics["split"] == "test" and metrics["num_examples"] == 10_000
  assert metrics["accuracy"] >= 0.97, metrics
  assert json.loads((model_dir / "metrics.json").read_text())["accuracy"] == metrics["accuracy"]


def test_mnist_cnn_with_one_epoch_reaches_98_5_percent(real_mnist_data_dir, tmp_path_factory):
  _, metrics = _one_epoch_run("mnist_cnn", real_mnist_data_dir, tmp_path_factory)
  assert metrics["accuracy"] >= 0.985, metrics


def test_evaluate_reproduces_the_run_metrics(short_mlp_run, real_mnist_data_dir):
  model_dir, metrics = short_mlp_run
  result = evaluate.evaluate_run(str(model_dir), data_dir=real_mnist_data_dir)
  assert result["num_examples"] == 10_000
  assert result["accuracy"] == pytest.approx(metrics["accuracy"], abs=1e-6)
  assert (model_dir / "eval_test.json").exists()
  on_train = evaluate.evaluate_run(str(model_dir), split="train[:5000]",
                                   data_dir=real_mnist_data_dir)
  # A sanity floor for another split (the README's 97 % after one epoch is the test set's;
  # this slice passed 0.97 with the per-image augmentation stream, 0.9696 with the per-batch one).
  assert on_train["num_examples"] == 5000 and on_train["accuracy"] >= 0.96


def test_evaluate_refuses_a_directory_that_is_not_a_run(tmp_path):
  with pytest.raises(FileNotFoundError, match=r"Invalid value for `model_dir`: .* is not a run "
                                              r"directory \(no config\.json\)"):
    evaluate.evaluate_run(str(tmp_path))
