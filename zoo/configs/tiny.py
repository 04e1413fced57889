"""Test-only recipes: the real recipes shrunk to tiny models and one short epoch."""

from zoo.configs import mnist_cnn, mnist_mlp


def mnist_mlp_tiny():
  """For tests only."""
  return mnist_mlp.get_config().replace(
      model="mlp_tiny", train_epochs=1, batch_size=8, eval_batch_size=8, warmup_epochs=0.0,
      model_kwargs={})


def mnist_cnn_tiny():
  """For tests only."""
  return mnist_cnn.get_config().replace(
      model="cnn_tiny", train_epochs=1, batch_size=8, eval_batch_size=8, warmup_epochs=0.0,
      model_kwargs={})
