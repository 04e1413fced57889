"""The catalog of recipes and shipped presets, as markdown: the docs' "Recipes and presets"
page and the README's table. Each figure has one source, read here: a recipe's `RUN_CARD`
(`zoo/configs/<recipe>.py`) and the presets' manifest (`zoo/presets.json`, written from the
shipped model cards). `scripts/make_docs.py` writes both; `tests/test_docs.py` fails while
either committed copy is stale.
"""

from __future__ import annotations

import re

from zoo import presets, registry

BEGIN, END = "<!-- begin recipes (scripts/make_docs.py) -->", "<!-- end recipes -->"


def anchor(title: str) -> str:
  """The id MkDocs (Python-Markdown's `toc`) and GitHub give a heading: lower case, no
  punctuation, spaces to dashes."""
  slug = re.sub(r"[^\w\s-]", "", title).strip().lower()
  return re.sub(r"[-\s]+", "-", slug)


def _measured_in(card, benchmarks: str) -> str:
  if card.measured_in.startswith("preset:"):
    _, name, version = card.measured_in.split(":")
    return f"`{name}:{version}`'s card"
  return f"[measured]({benchmarks}#{anchor(card.measured_in)})"


def _shipped(name: str) -> str:
  entry = presets.manifest()["presets"].get(name)
  return f"`{name}:{entry['latest']}`" if entry else ""


def recipes_table(benchmarks: str, what: bool = True) -> str:
  """One row per recipe: what it is (unless `what` is False), its headline figure, training
  time, shipped preset. `benchmarks`: the link to the benchmarks page from where the table
  is shown."""
  rows = ["| recipe | task |" + (" what |" if what else "") +
          " quality | training time (2 CPU cores) | preset |",
          "|---|---|" + ("---|" if what else "") + "---|---|---|"]
  for name in registry.recipe_names():
    card = registry.run_card(name)
    task = registry.get_config(name).task
    summary = f" {registry.summary(name)} |" if what else ""
    rows.append(f"| `{name}` | {task} |{summary} {card.quality} "
                f"({_measured_in(card, benchmarks)}) | {card.train_time} | {_shipped(name)} |")
  return "\n".join(rows) + "\n"


def presets_table() -> str:
  """One row per shipped preset: its versions, task, headline figure and size."""
  rows = ["| preset | versions | task | headline (newest version's card) | size |",
          "|---|---|---|---|---|"]
  for name, entry in sorted(presets.manifest()["presets"].items()):
    latest = entry["versions"][str(entry["latest"])]
    versions = ", ".join(sorted(entry["versions"], key=int))
    rows.append(f"| `{name}` | {versions} (newest {entry['latest']}) | {latest['task']} | "
                f"{latest['headline']} | {latest['bytes'] / 1e6:.1f} MB |")
  return "\n".join(rows) + "\n"


def recipes_page() -> str:
  """docs/recipes.md, whole."""
  parts = [
      "# Recipes and presets\n",
      "<!-- Written by scripts/make_docs.py from the recipes' RUN_CARDs and "
      "zoo/presets.json; edit those, not this page. -->\n",
      "A **recipe** is a named training config (`zoo-train --model=NAME`); a **preset** is a "
      "shipped, trained export of one, loaded by name (`zoo.load(\"NAME\")`, `zoo-predict "
      "--model=NAME`, `--init_from=NAME`). Figures are measured, on an otherwise idle "
      "2-core x86_64 CPU without GPU unless the linked section says otherwise; each links "
      "to where it was measured, with the command, machine, date and commit.\n",
      "## Recipes\n",
      recipes_table("benchmarks.md"),
      "## Presets\n",
      "Every preset ships in the package (`zoo --list` prints this table in a terminal) "
      "and is copied into `ZOO_HOME` and checked against its sha256 on first use: "
      "[Presets](guides/presets.md).\n",
      presets_table(),
      "## Run cards\n",
      "How to train each recipe, and what it reached:\n",
  ]
  for name in registry.recipe_names():
    card = registry.run_card(name)
    parts.append(f"### {name}\n")
    parts.append(f"{registry.summary(name)}\n")
    parts.append(f'<!-- skip: next "trains the recipe: {card.train_time}" -->\n'
                 f"```bash\n{card.command}\n```\n")
    parts.append(f"- quality: {card.quality} ({_measured_in(card, 'benchmarks.md')})\n"
                 f"- training time: {card.train_time}\n")
  return "\n".join(parts)


def readme_with_table(readme: str) -> str:
  """The README with its recipes table (between `BEGIN` and `END`) written anew."""
  start, end = readme.index(BEGIN) + len(BEGIN), readme.index(END)
  return readme[:start] + "\n" + recipes_table("BENCHMARKS.md", what=False) + readme[end:]
