r"""Exports a trained run for apps: SavedModel (TF Serving layout) + TFLite, checked.

  zoo-export --model_dir=runs/cnn --manual_dir=../shared/data/mnist
  zoo-export --add_onnx=saved_models/mnist_cnn/3 --manual_dir=../shared/data/mnist
  zoo-export --from_export=saved_models/mnist_cnn/3 --export_dir=saved_models \
      --manual_dir=../shared/data/mnist

Writes exports/<name>/<version>/ (next free version unless --version) with the SavedModel,
the TFLite variants, model.onnx, labels.txt and model_card.json, and prints the parity table
it checked. The version appears only when the SavedModel's checks passed; a TFLite or ONNX
file that fails its own is left out (a warning, and `left_out` in the card says why) unless
--require names it, which makes the failure fatal. `saved_models/` holds
the models the zoo ships; write there only to rebuild one (README, "Pre-trained models").
"""

from zoo import cli  # First: quiets TensorFlow's start-up.

import sys

from absl import flags

from zoo import configs, errors, export, runtime
from zoo import flags as zoo_flags

flags.DEFINE_string("model_dir", None, "Run directory written by scripts/train.py.")
flags.DEFINE_string("export_dir", "exports", "Root of the exported models (the zoo's own "
                    "shipped models are in saved_models/).")
flags.DEFINE_string("name", None, "Model name (default: the run's recipe name).")
flags.DEFINE_integer("version", None, "Integer version (default: next free one).")
flags.DEFINE_bool("overwrite", False, "Replace an existing version.")
flags.DEFINE_list("variants", None, "TFLite variants to write (default: all of the task's: "
                  "classifiers float32,float16,dynamic_int8,int8; detectors "
                  "float32,float16,int8; generators float32,float16).")
flags.DEFINE_multi_string("set", [], "Change a task knob of the run for this export only "
                          "(knobs that act at inference): --set=task_kwargs.KNOB=VALUE, e.g. "
                          "--set=task_kwargs.class_agnostic_nms=True; repeatable.")
flags.DEFINE_integer("calibration_examples", None, "Training images calibrating the int8 "
                     "file (default: the task's, 500 for classifiers, 300 for detectors).")
flags.DEFINE_string("parity_split", None, "Classifiers: the split the exports are checked "
                    "on (default: the run's eval split).")
flags.DEFINE_list("require", [], "Files whose failed check fails the whole export (nothing "
                  "is written), e.g. --require=int8 or --require=all. Any other file that "
                  "fails its check is left out, with the reason in the output and the card; "
                  "the SavedModel is always required.")
flags.DEFINE_bool("onnx", True, "Also write model.onnx (needs pip install -e '.[onnx]').")
flags.DEFINE_string("add_onnx", None, "Instead of exporting a run: add model.onnx to this "
                    "exported version directory (e.g. saved_models/mnist_cnn/3), converted "
                    "from its SavedModel and checked against it.")
flags.DEFINE_string("from_export", None, "Instead of a run directory: export again the "
                    "weights of this exported version (e.g. saved_models/mnist_cnn/3, whose "
                    "run directory is gone) with this zoo's signatures and files; the card "
                    "says `restored_from`.")
flags.mark_flags_as_mutual_exclusive(["model_dir", "add_onnx", "from_export"], required=True)
zoo_flags.define_data_flags()
flags.adopt_module_key_flags(zoo_flags)
FLAGS = flags.FLAGS


def _task_kwargs(overrides) -> dict:
  knobs = {}
  for item in overrides:
    key, sep, raw = item.partition("=")
    field, dot, knob = key.strip().partition(".")
    if not sep or field != "task_kwargs" or not dot or not knob:
      raise errors.UsageError(f"Invalid value for --set: {item!r}; an export can only change "
                              "task knobs: --set=task_kwargs.KNOB=VALUE (retrain for others).")
    knobs[knob] = configs.parse_value(raw.strip())
  return knobs


def main(argv):
  cli.no_arguments(argv)
  data_flags = dict(data_dir=FLAGS.data_dir, manual_dir=FLAGS.manual_dir,
                    allow_download=FLAGS.download)
  if FLAGS.add_onnx:
    export.add_onnx(FLAGS.add_onnx, **data_flags)
    path = FLAGS.add_onnx
  else:
    run = export.export_again if FLAGS.from_export else export.export_run
    path = run(
        FLAGS.from_export or FLAGS.model_dir, export_dir=FLAGS.export_dir, name=FLAGS.name, version=FLAGS.version,
        overwrite=FLAGS.overwrite, variants=FLAGS.variants, onnx=FLAGS.onnx,
        task_kwargs=_task_kwargs(FLAGS.set), require=FLAGS.require, **data_flags,
        **({"parity_split": FLAGS.parity_split} if FLAGS.parity_split else {}),
        **({"calibration_examples": FLAGS.calibration_examples}
           if FLAGS.calibration_examples else {}))
  card = runtime.read_card(path)
  print(export.parity_table(card))
  for entry in card.get("left_out", {}).values():
    print(f"warning: {entry['path']} left out: {entry['reason']}.", file=sys.stderr)
  print(path)


def run() -> None:
  """The `zoo-export` command (and `zoo export`)."""
  cli.run(main)


if __name__ == "__main__":
  run()
