"""zoo.rundir: the run-directory layout, and loading a run back."""

import json

import pytest

from tests import recipes
from zoo import errors, rundir, train


def test_a_folder_that_is_not_a_run_says_what_was_expected(tmp_path):
  with pytest.raises(errors.NotFoundError, match=r"is not a run directory \(no config\.json\)"):
    rundir.load_run(str(tmp_path))
  (tmp_path / rundir.CONFIG).write_text("{}")
  with pytest.raises(errors.NotFoundError, match=r"has no checkpoint yet"):
    rundir.check_trained(str(tmp_path))


def test_completed_epochs_reads_the_backup_and_is_zero_for_a_new_run(tmp_path):
  assert rundir.completed_epochs(str(tmp_path)) == 0
  (tmp_path / rundir.BACKUP).mkdir()
  (tmp_path / rundir.BACKUP / "training_metadata.json").write_text(json.dumps({"epoch": 3}))
  assert rundir.completed_epochs(str(tmp_path)) == 3


def test_eval_paths_are_file_safe_for_sliced_splits(tmp_path):
  assert rundir.eval_path("runs/a", "test[:64]").endswith("eval_test_64_.json")


def test_load_run_returns_the_config_and_the_checkpointed_model(mock_mnist, mock_manual_dir,
                                                                 tmp_path):
  config = recipes.mnist_mlp_tiny()
  run = str(tmp_path / "run")
  train.train_and_evaluate(config, run, data_dir=str(tmp_path / "tfds"),
                           manual_dir=mock_manual_dir)
  loaded, model = rundir.load_run(run)
  # The same recipe, read back from config.json (tuples come back as JSON lists).
  assert loaded.to_dict() == json.loads(config.to_json())
  assert model.output_shape == (None, 10)
