"""Test-only recipes and builders (the real ones shrunk so one fit step takes milliseconds),
and the callbacks tests use to interrupt a run.

They live with the tests, not in the package: users never see them in `--model`'s list.
"""

import functools

import keras

from zoo import models, registry

# Small variants of the classifier builders (exact weight counts in tests/models).
TINY_BUILDERS = {
    "mlp_tiny": functools.partial(models.mlp, hidden_units=(16,), name="mlp_tiny"),
    "cnn_tiny": functools.partial(models.cnn, filters=(4, 8), name="cnn_tiny"),
}

# The same shrinking as `--set` overrides, for the real recipes through scripts/train.py.
_TINY_GAN = ["--set=model_kwargs.generator_filters=(8,4)",
             "--set=model_kwargs.discriminator_filters=(4,8)",
             "--set=model_kwargs.latent_dim=8",
             "--set=task_kwargs.quality_samples=64", "--set=task_kwargs.eval_samples=64"]
SHRINK = {
    "mnist_mlp": ["--set=model_kwargs.hidden_units=(16,)"],
    "mnist_cnn": ["--set=model_kwargs.filters=(4,8)"],
    "keras_example_cnn": [],
    "dcgan_mnist": _TINY_GAN,
    "cdcgan_mnist": _TINY_GAN,
    "tf_tutorial_dcgan": ["--set=task_kwargs.quality_samples=64",
                          "--set=task_kwargs.eval_samples=64"],
    "detector_mnist": ["--set=model_kwargs.widths=(4,8,8,8)", "--set=model_kwargs.fpn_width=8",
                       "--set=model_kwargs.head_width=8", "--set=model_kwargs.head_depth=1",
                       "--set=train_split=train[:64]", "--set=eval_split=test[:32]",
                       "--set=task_kwargs.map_images=16"],
    "image_classifier": ["--set=folder_image_shape=(32,32,3)"],
    "retinanet_efficientnet": ["--set=model_kwargs.image_size=64",
                               "--set=model_kwargs.fpn_width=8",
                               "--set=model_kwargs.head_width=8",
                               "--set=model_kwargs.head_depth=1",
                               "--set=train_split=train[:64]", "--set=eval_split=test[:32]",
                               "--set=task_kwargs.map_images=16"],
    "retinanet_mobilenet": ["--set=model_kwargs.image_size=64", "--set=model_kwargs.fpn_width=8",
                            "--set=model_kwargs.head_width=8", "--set=model_kwargs.head_depth=1",
                            "--set=train_split=train[:64]", "--set=eval_split=test[:32]",
                            "--set=task_kwargs.map_images=16"],
}


def mnist_mlp_tiny():
  """`mnist_mlp` with one hidden layer of 16, one epoch of batches of 8."""
  config = registry.get_config("mnist_mlp")
  return config.replace(train_epochs=1, min_train_steps=0, batch_size=8, eval_batch_size=8,
                        warmup_epochs=0.0,
                        model_kwargs={**config.model_kwargs, "hidden_units": (16,)})


def mnist_cnn_tiny():
  config = registry.get_config("mnist_cnn")
  return config.replace(train_epochs=1, min_train_steps=0, batch_size=8, eval_batch_size=8,
                        warmup_epochs=0.0, model_kwargs={**config.model_kwargs, "filters": (4, 8)})


def dcgan_tiny(conditional=False):
  """`dcgan_mnist` (or `cdcgan_mnist`) with tiny networks and cheap quality checks."""
  config = registry.get_config("cdcgan_mnist" if conditional else "dcgan_mnist")
  return config.replace(
      train_epochs=1, batch_size=8, eval_batch_size=8,
      model_kwargs={**config.model_kwargs, "generator_filters": (8, 4),
                    "discriminator_filters": (4, 8), "latent_dim": 8},
      task_kwargs={"quality_samples": 64, "eval_samples": 64})


class Interrupt(keras.callbacks.Callback):
  """Simulates a crash (Ctrl-C) at the start of a given epoch (0-based)."""

  def __init__(self, at_epoch):
    super().__init__()
    self.at_epoch = at_epoch

  def on_epoch_begin(self, epoch, logs=None):
    if epoch == self.at_epoch:
      raise KeyboardInterrupt("simulated crash")


_TINY_DETECTOR = {"widths": (4, 8, 8, 8), "fpn_width": 8, "head_width": 8, "head_depth": 1}


def detector_tiny():
  """`detector_mnist` with 8-wide layers on 256 training and 64 test canvases."""
  config = registry.get_config("detector_mnist")
  return config.replace(
      train_epochs=3, batch_size=16, eval_batch_size=32, warmup_epochs=0.0,
      train_split="train[:256]", eval_split="test[:64]", log_images=2,
      model_kwargs={**config.model_kwargs, **_TINY_DETECTOR},
      task_kwargs={"map_images": 32})
