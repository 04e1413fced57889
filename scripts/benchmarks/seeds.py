"""BENCHMARKS.md, "Accuracy over seeds (seeds)": each headline recipe once per seed, its
test accuracy as mean, std, min, median and max against its floor; one-epoch runs; and
one `--deterministic` run timed against the same seed without."""

from __future__ import annotations

import statistics

from benchmarks import foundation, report

# The test accuracy each headline recipe must reach as the median over seeds (README).
ACCURACY_FLOORS = {"mnist_cnn": 0.994, "mnist_mlp": 0.983}


def seed_summary(rows: list[dict]) -> list[dict]:
  """Per recipe: final accuracy over its seeds as mean, std (sample), min, median, max."""
  out = []
  for recipe in dict.fromkeys(r["recipe"] for r in rows):
    acc = [r["final_accuracy"] for r in rows if r["recipe"] == recipe]
    secs = [r["train_seconds"] for r in rows if r["recipe"] == recipe]
    out.append({"recipe": recipe, "seeds": len(acc), "mean": statistics.mean(acc),
                "std": statistics.stdev(acc) if len(acc) > 1 else 0.0, "min": min(acc),
                "median": statistics.median(acc), "max": max(acc),
                "train_seconds_median": statistics.median(secs)})
  return out


def seeds_report(rows: list[dict], short_rows: list[dict], deterministic_rows: list[dict], *,
                 command: str, floors: dict) -> str:
  """The BENCHMARKS.md section for `scripts/benchmark.py --seeds`."""
  lines = report.header(command, libraries="keras tensorflow-datasets") + [
      "Data: the real MNIST files in `../shared/data/mnist`; final accuracy on the 10,000-image "
      "test split after the recipe's full schedule; each seed a fresh run of the unchanged "
      "recipe (`--seed=N`); training seconds exclude validation.",
      "",
      "| recipe | seeds | test accuracy mean ± std | min | median | max | floor | median - floor "
      "| train time (median) |",
      "|---|---|---|---|---|---|---|---|---|",
  ]
  for s in seed_summary(rows):
    floor = floors.get(s["recipe"])
    margin = "" if floor is None else f"{100 * (s['median'] - floor):+.2f} points"
    lines.append(
        f"| `{s['recipe']}` | {s['seeds']} | {100 * s['mean']:.2f} ± {100 * s['std']:.2f} % | "
        f"{report.pct(s['min'])} | {report.pct(s['median'])} | {report.pct(s['max'])} | "
        f"{'' if floor is None else report.pct(floor)} | {margin} | {s['train_seconds_median']:.0f} s |")
  lines += ["", "Every run:", "",
            "| run | final test acc | best test acc | train time | time to 99.0 % (epoch) |",
            "|---|---|---|---|---|"]
  for r in rows + short_rows + deterministic_rows:
    epoch = "" if r["epoch_to_target"] is None else f" ({r['epoch_to_target']})"
    lines.append(f"| `{r['label']}` | {report.pct(r['final_accuracy'])} | {report.pct(r['best_accuracy'])} | "
                 f"{r['train_seconds']:.1f} s | {report.sec(r['seconds_to_target'])}{epoch} |")
  for d in deterministic_rows:
    base = next((r for r in rows if r["recipe"] == d["recipe"] and r["seed"] == d["seed"]), None)
    if base:
      lines += ["", f"`--deterministic` (TensorFlow op determinism) on `{d['recipe']}`, seed "
                f"{d['seed']}: {d['train_seconds']:.1f} s of training vs {base['train_seconds']:.1f} s "
                f"without ({d['train_seconds'] / base['train_seconds']:.2f}x), final accuracy "
                f"{report.pct(d['final_accuracy'])} vs {report.pct(base['final_accuracy'])}."]
  return "\n".join(lines) + "\n"


def main(flags, workdir: str, command: str) -> tuple[str, str]:
  common = dict(data_dir=flags.data_dir, manual_dir=flags.manual_dir,
                target=flags.target_accuracy)
  rows = [foundation.run_recipe(name, workdir, seed=int(seed), **common)
          for name in flags.seed_recipes for seed in flags.seeds]
  short = [foundation.run_recipe(name, workdir, train_epochs=1, **common)
           for name in flags.seed_recipes]
  # Last: op determinism stays on for the rest of the process.
  det = [foundation.run_recipe(flags.seed_recipes[0], workdir, seed=int(flags.seeds[0]),
                               deterministic=True, **common)]
  report.save_json(workdir, "seeds.json", {"rows": rows, "short": short, "deterministic": det})
  body = seeds_report(rows, short, det, command=command, floors=ACCURACY_FLOORS)
  return flags.seeds_section, body
