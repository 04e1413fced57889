r"""Trains a recipe by name.

  zoo-train --model=mnist_cnn --model_dir=runs/cnn \
      --manual_dir=../shared/data/mnist

Rerunning the same command on the same --model_dir resumes an interrupted run (Ctrl-C
stops cleanly, exit status 130); on a finished run it says so and changes nothing.
"""

from zoo import cli  # First: quiets TensorFlow's start-up.

from absl import flags

from zoo import tasks, train
from zoo import flags as zoo_flags

zoo_flags.define_train_flags()
flags.adopt_module_key_flags(zoo_flags)
FLAGS = flags.FLAGS


def main(argv):
  cli.no_arguments(argv)
  config = zoo_flags.config_from_flags(FLAGS)
  metrics = train.train_and_evaluate(
      config, FLAGS.model_dir, data_dir=FLAGS.data_dir, manual_dir=FLAGS.manual_dir,
      allow_download=FLAGS.download, tpu=FLAGS.tpu,
      worker_start_timeout_seconds=FLAGS.worker_start_timeout)
  print(f"{FLAGS.model}: {tasks.get(config.task).headline(metrics)} "
        f"-> {metrics['model_dir']}/metrics.json")


def run() -> None:
  """The `zoo-train` command (and `zoo train`)."""
  cli.run(main)


if __name__ == "__main__":
  run()
