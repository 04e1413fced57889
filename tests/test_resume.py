"""A run killed with SIGKILL at any step and rerun ends with the same weights, bit for bit, as
the same command run without interruption, for every task (classifier, GAN, detector).

The killed run is a child process that kills itself after a given training step; the
uninterrupted run and the rerun that resumes the killed one run here. Each epoch's batches,
augmentation and random layers are a function of `(seed, epoch)` alone (`zoo.data.epoch_seed`,
`zoo.callbacks.EpochSeeds`), so the rerun, which restores the last completed epoch's backup,
trains the epochs after it exactly as the uninterrupted run did.
"""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from tests import recipes
from tests.conftest import REPO
from zoo import rundir, train

# Each task's tiny recipe, 3 epochs, and where its run is killed: (epoch, step), 0-based.
# Quality measured only at the end (FID, mAP: minutes of this test, not its subject), and
# the detector flips its training images, so that its augmentation is resumed too. The
# classifier runs 3 steps per call (`steps_per_execution`; 8 steps an epoch), so it is
# killed after its first group of steps: callbacks see a group's last step.
CASES = {
    "classification": ("recipes.mnist_cnn_tiny().replace(train_epochs=3, augment=True, "
                       "steps_per_execution=3)", (1, 2)),
    "generation": ("recipes.dcgan_tiny(conditional=True).replace(train_epochs=3, task_kwargs="
                   "{'quality_every_epochs': 0, 'eval_samples': 16, 'quality_samples': 16})",
                   (2, 0)),
    "detection": ("recipes.detector_tiny().replace(train_split='train[:64]', log_images=0, "
                  "task_kwargs={'map_every_epochs': 0, 'map_images': 8, 'flip': True})",
                  (1, 1)),
}

# The killed run: the same training, a callback that SIGKILLs the process after one step.
_CHILD = textwrap.dedent("""
    import json, os, signal, sys
    import keras, tensorflow_datasets as tfds
    from tests import recipes
    from zoo import train
    config_expr, model_dir, kwargs, (kill_epoch, kill_step) = json.loads(sys.argv[1])

    class Kill(keras.callbacks.Callback):
      def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
      def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == (kill_epoch, kill_step):
          os.kill(os.getpid(), signal.SIGKILL)

    with tfds.testing.mock_data(num_examples=64):
      train.train_and_evaluate(eval(config_expr).replace(deterministic=True), model_dir,
                               extra_callbacks=[Kill()], verbose=0, **kwargs)
""")


def _weights(model_dir):
  return keras.saving.load_model(os.path.join(model_dir, rundir.CHECKPOINT)).get_weights()


@pytest.mark.parametrize("task", sorted(CASES))
def test_a_run_killed_at_a_step_and_resumed_ends_bit_identical(task, mock_mnist, mock_manual_dir,
                                                              tmp_path):
  config_expr, kill_at = CASES[task]
  config = eval(config_expr).replace(deterministic=True)  # pylint: disable=eval-used
  kwargs = {"data_dir": str(tmp_path / "tfds"), "manual_dir": mock_manual_dir}
  whole, killed = str(tmp_path / "whole"), str(tmp_path / "killed")
  train.train_and_evaluate(config, whole, verbose=0, **kwargs)

  child = subprocess.run([sys.executable, "-c", _CHILD,
                          json.dumps([config_expr, killed, kwargs, kill_at])],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
  assert child.returncode == -9, child.stderr[-3000:]  # Killed, not finished or failed.
  assert rundir.completed_epochs(killed) == kill_at[0]

  metrics = train.train_and_evaluate(config, killed, verbose=0, **kwargs)
  assert metrics["epochs_run_this_invocation"] == config.train_epochs - kill_at[0]
  for a, b in zip(_weights(whole), _weights(killed), strict=True):
    np.testing.assert_array_equal(a, b)



def test_a_finetuning_run_killed_while_frozen_and_resumed_ends_bit_identical(
    mock_mnist, mock_manual_dir, tmp_path):
  """`init_from` a run whose second conv is narrower: the first conv and its BatchNorm load
  (frozen for 2 epochs, the BatchNorm throughout), the rest starts anew. Killed in epoch 2,
  still frozen; the rerun freezes epoch 2 again and unfreezes epoch 3 as the whole run did."""
  kwargs = {"data_dir": str(tmp_path / "tfds"), "manual_dir": mock_manual_dir}
  source = str(tmp_path / "source")
  narrow = recipes.mnist_cnn_tiny()
  train.train_and_evaluate(narrow.replace(model_kwargs={**narrow.model_kwargs,
                                                        "filters": (4, 6)}),
                           source, verbose=0, **kwargs)
  config_expr = (f"recipes.mnist_cnn_tiny().replace(train_epochs=3, augment=True, "
                 f"steps_per_execution=3, init_from={source!r}, freeze_epochs=2)")
  config = eval(config_expr).replace(deterministic=True)  # pylint: disable=eval-used
  whole, killed = str(tmp_path / "whole"), str(tmp_path / "killed")
  train.train_and_evaluate(config, whole, verbose=0, **kwargs)
  card = rundir.read_json(whole, rundir.RUN_CARD)["init_from"]
  assert card["loaded"] == ["conv_0", "bn_0"] and card["freeze_epochs"] == 2

  child = subprocess.run([sys.executable, "-c", _CHILD,
                          json.dumps([config_expr, killed, kwargs, (1, 2)])],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
  assert child.returncode == -9, child.stderr[-3000:]
  assert rundir.completed_epochs(killed) == 1
  metrics = train.train_and_evaluate(config, killed, verbose=0, **kwargs)
  assert metrics["epochs_run_this_invocation"] == 2
  assert rundir.read_json(killed, rundir.RUN_CARD)["init_from"]["loaded"] == card["loaded"]
  for a, b in zip(_weights(whole), _weights(killed), strict=True):
    np.testing.assert_array_equal(a, b)
