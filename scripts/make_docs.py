"""Writes the pages whose figures come from elsewhere: `docs/recipes.md` and the README's
recipes table, from the recipes' `RUN_CARD`s and the presets' manifest (`zoo.catalog`).

  python scripts/make_docs.py

Run it after changing a run card or the presets (`scripts/make_presets.py`); a test fails
while either committed copy differs from what this writes. The pictures have their own
script, `scripts/make_docs_images.py`.
"""

from zoo import cli  # First: quiets TensorFlow's start-up.

import os

from zoo import catalog

if __name__ == "__main__":
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  with open(os.path.join(repo, "docs", "recipes.md"), "w") as f:
    f.write(catalog.recipes_page())
  readme = os.path.join(repo, "README.md")
  with open(readme) as f:
    text = f.read()
  with open(readme, "w") as f:
    f.write(catalog.readme_with_table(text))
  print("-> docs/recipes.md, README.md")
