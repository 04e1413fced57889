"""absl flags shared by the scripts, and the one function that turns them into a config."""

from __future__ import annotations

from absl import flags

from zoo import registry
from zoo.configs import TrainConfig, apply_overrides


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
  flags.DEFINE_integer("epochs", None, "Number of training epochs (config `train_epochs`).")
  flags.DEFINE_integer("batch_size", None, "Global batch size in examples, summed over "
                       "all replicas.")
  flags.DEFINE_float("learning_rate", None, "Peak learning rate.")
  flags.DEFINE_integer("seed", None, "Seed for weights, shuffling and augmentation.")
  flags.DEFINE_enum("mixed_precision", None, ["auto", "float32", "float16", "bfloat16"],
                    "Precision policy (default: the recipe's, float32). auto: mixed_float16 on "
                    "GPUs with compute capability >= 7.0, mixed_bfloat16 on TPUs, float32 else. "
                    "On CPUs float16 is emulated and trains tens of times slower.")
  flags.DEFINE_enum("strategy", None, ["auto", "default", "one_device", "mirrored",
                                       "multi_worker_mirrored", "tpu"],
                    "tf.distribute strategy (default: the recipe's, default). --batch_size "
                    "stays the global batch. mirrored: all GPUs, or all logical CPUs when "
                    "there is no GPU. multi_worker_mirrored reads TF_CONFIG (README.md, "
                    "'Scale out').")
  flags.DEFINE_multi_string("set", [], "Override any config field: --set=field=value, "
                            "repeatable; e.g. --set=augment=False "
                            "--set=model_kwargs.dropout=0.1. Values are Python literals.")
  flags.DEFINE_string("tpu", None, "TPU address, with --strategy=tpu.")
  flags.DEFINE_float("worker_start_timeout", 300.0, "With --strategy=multi_worker_mirrored: "
                     "seconds to wait for every worker in TF_CONFIG to start before exiting "
                     "with an error (TensorFlow itself waits forever).")
  flags.mark_flags_as_required(["model", "model_dir"])
  define_data_flags()


def config_from_flags(values) -> TrainConfig:
  """The recipe named by --model, with the named flags then --set overrides applied."""
  config = registry.get_config(values.model)
  named = {"dataset": values.dataset, "train_epochs": values.epochs,
           "batch_size": values.batch_size, "learning_rate": values.learning_rate,
           "seed": values.seed, "mixed_precision": values.mixed_precision,
           "strategy": values.strategy}
  config = config.replace(**{k: v for k, v in named.items() if v is not None})
  return apply_overrides(config, values.set).validate()
