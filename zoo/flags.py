"""absl flags shared by the scripts, and the one function that turns them into a config.

A script that defines these flags also calls `flags.adopt_module_key_flags(zoo.flags)`, so
its `--help` lists them (absl lists only the main module's own flags there).
"""

from __future__ import annotations

import re

from absl import flags

from zoo import distribute, errors, precision, registry
from zoo.configs import TrainConfig, apply_overrides
from zoo.data import image_folder


def define_data_flags():
  flags.DEFINE_string("data_dir", None, "tensorflow-datasets data directory "
                      "(default: TFDS's own, ~/tensorflow_datasets).")
  flags.DEFINE_string("manual_dir", None, "Folder holding the dataset's original files, "
                      "e.g. ../shared/data/mnist; the dataset is prepared from it into "
                      "--data_dir if not prepared yet.")
  flags.DEFINE_bool("download", False, "Let tensorflow-datasets download a dataset that is "
                    "neither prepared nor given by --manual_dir (needs internet).")


def define_train_flags():
  """Flags of `scripts/train.py`. Unset flags keep the recipe's value."""
  flags.DEFINE_string("model", None, f"Recipe name, one of {registry.recipe_names()}.")
  flags.DEFINE_string("model_dir", None, "Run directory: config, TensorBoard logs, "
                      "checkpoints, metrics.json. Rerunning on it resumes the run.")
  flags.DEFINE_string("dataset", None, "TFDS dataset name (mnist, fashion_mnist, ...).")
  flags.DEFINE_integer("epochs", None, "Number of training epochs (config `train_epochs`; "
                       "exactly these: sets `min_train_steps` to 0).")
  flags.DEFINE_integer("batch_size", None, "Global batch size in examples, summed over "
                       "all replicas.")
  flags.DEFINE_float("learning_rate", None, "Peak learning rate.")
  flags.DEFINE_integer("seed", None, "Seed for weights, shuffling and augmentation.")
  flags.DEFINE_bool("deterministic", None, "TensorFlow op determinism: rerunning the same "
                    "command gives bit-identical weights (slower; cost in BENCHMARKS.md).")
  flags.DEFINE_enum("mixed_precision", None, list(precision.POLICIES),
                    "Precision policy (default: the recipe's, float32). auto: mixed_float16 on "
                    "GPUs with compute capability >= 7.0, mixed_bfloat16 on TPUs, float32 else. "
                    "On CPUs float16 is emulated and trains tens of times slower.")
  flags.DEFINE_enum("strategy", None, list(distribute.STRATEGIES),
                    "tf.distribute strategy (default: the recipe's, default). --batch_size "
                    "stays the global batch. mirrored: all GPUs, or all logical CPUs when "
                    "there is no GPU. multi_worker_mirrored reads TF_CONFIG (README.md, "
                    "'Scale out').")
  flags.DEFINE_string("init_from", None, "Start from trained weights (default: the "
                      "recipe's): none, imagenet, a preset (mnist_cnn, mnist_cnn:4; see "
                      "zoo --list), an exported model or a run directory. Layers that fit "
                      "are loaded, the others (a head for other classes) start anew.")
  flags.DEFINE_multi_string("set", [], "Override any config field: --set=field=value, "
                            "repeatable; e.g. --set=augment=False "
                            "--set=model_kwargs.dropout=0.1. Values are Python literals.")
  flags.DEFINE_string("tpu", None, "TPU address, with --strategy=tpu.")
  flags.DEFINE_float("worker_start_timeout", 300.0, "With --strategy=multi_worker_mirrored: "
                     "seconds to wait for every worker in TF_CONFIG to start before exiting "
                     "with an error (TensorFlow itself waits forever).")
  flags.mark_flags_as_required(["model", "model_dir"])
  define_data_flags()


# Config field set by each named flag of `scripts/train.py` (the others go through --set).
FLAG_FIELDS = {"dataset": "dataset", "epochs": "train_epochs", "batch_size": "batch_size",
               "learning_rate": "learning_rate", "seed": "seed",
               "deterministic": "deterministic", "mixed_precision": "mixed_precision",
               "strategy": "strategy", "init_from": "init_from"}


def config_from_flags(values) -> TrainConfig:
  """The recipe named by --model, with the named flags then --set overrides applied.

  Raises:
    zoo.errors.UsageError: naming the flag the user typed (`--epochs`), not the config
      field behind it (`train_epochs`), when the bad value came from a named flag.
  """
  try:
    config = registry.get_config(values.model)
  except errors.ZooError as e:
    raise errors.UsageError(str(e)) from None
  named = {field: getattr(values, flag) for flag, field in FLAG_FIELDS.items()
           if getattr(values, flag) is not None}
  if "train_epochs" in named:  # --epochs=N: N epochs, as asked, whatever the data's size.
    named["min_train_steps"] = 0
  overridden = {item.partition("=")[0].strip() for item in values.set}
  try:
    config = apply_overrides(config.replace(**named), values.set)
    if image_folder.is_image_folder(config.dataset) and "eval_split" not in overridden:
      # A folder has train and valid splits (test only sometimes): validate on valid.
      config = config.replace(eval_split="valid")
    return config.validate()
  except errors.ZooError as e:
    message = str(e)
    for flag, field in FLAG_FIELDS.items():
      if field in named and field not in overridden:
        message = re.sub(rf"`{field}`", f"`--{flag}`", message)
        message = re.sub(rf"\b{field}=", f"--{flag}=", message)
    raise errors.UsageError(message) from None
