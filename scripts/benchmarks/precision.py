"""BENCHMARKS.md, "Precision policies on this CPU (precision)": training images/s under
float32, mixed_bfloat16 and mixed_float16, with and without XLA, and each full recipe's
test accuracy under each policy."""

from __future__ import annotations

import tensorflow as tf

from benchmarks import foundation, report

PRECISION_POLICIES = ("float32", "bfloat16", "float16")


def precision_report(step_rates: dict, rows: list[dict], *, command: str) -> str:
  """The precision section of BENCHMARKS.md.

  Args:
    step_rates: {(recipe, policy): {"no_xla": images/s, "xla": images/s}}.
    rows: `run_recipe` rows, one per (recipe, policy), trained for the same epochs.
    command: the command that produced them.
  """
  accelerators = tf.config.list_physical_devices("GPU") + tf.config.list_logical_devices("TPU")
  lines = report.header(command) + [
      ("Measured with the accelerators named above. " if accelerators else
       "All figures are CPU figures: **no GPU or TPU was available**. ")
      + "`float16` and `bfloat16` mean the Keras policies `mixed_float16` and "
      "`mixed_bfloat16` (float32 variables, float32 head).",
      "",
      "Training images/s of each recipe's model on one real batch, repeated (no input "
      "pipeline), by policy, without and with XLA:",
      "",
      "| recipe | policy | no XLA | XLA | no XLA, vs float32 |",
      "|---|---|---|---|---|",
  ]
  for (name, policy), rates in step_rates.items():
    base = step_rates[(name, "float32")]["no_xla"]
    lines.append(f"| `{name}` | {policy} | {rates['no_xla']:.0f} | {rates['xla']:.0f} | "
                 f"{rates['no_xla'] / base:.2f}x |")
  lines += ["", "Each whole recipe (input pipeline, its own XLA setting; the time excludes "
            "validation) trained under each policy for the same epochs, from the same seed; "
            "accuracy on the 10,000-image MNIST test split:", "",
            "| recipe | epochs | policy | XLA | test accuracy | train time | train images/s |",
            "|---|---|---|---|---|---|---|"]
  for r in rows:
    lines.append(f"| `{r['recipe']}` | {r['epochs']} | {r['mixed_precision']} | "
                 f"{'on' if r['jit_compile'] else 'off'} | {report.pct(r['final_accuracy'])} | "
                 f"{r['train_seconds']:.1f} s | {r['images_per_second']:.0f} |")
  return "\n".join(lines) + "\n"


def main(flags, workdir: str, command: str) -> tuple[str, str]:
  step_rates = {(name, policy): rates for name in flags.precision_recipes
                for policy, rates in foundation.train_step_images_per_second(
                    name, data_dir=flags.data_dir, policies=PRECISION_POLICIES).items()}
  rows = [foundation.run_recipe(name, workdir, data_dir=flags.data_dir,
                                manual_dir=flags.manual_dir, target=flags.target_accuracy,
                                train_epochs=flags.precision_epochs, mixed_precision=policy)
          for name in flags.precision_recipes for policy in PRECISION_POLICIES]
  report.save_json(workdir, "precision.json", {
      "step_rates": {f"{k[0]} {k[1]}": v for k, v in step_rates.items()}, "rows": rows})
  body = precision_report(step_rates, rows, command=command)
  return "Precision policies on this CPU (precision)", body
