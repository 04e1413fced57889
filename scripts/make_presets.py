"""Writes the presets manifest (`zoo/presets.json`) from `saved_models/`: every shipped
version with its files' sizes and sha256, its task and its card's headline figure.

  python scripts/make_presets.py

Run it after adding or re-exporting a version in `saved_models/`; a test fails while the
committed manifest differs from what this writes.
"""

import os

from zoo import presets

if __name__ == "__main__":
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  built = presets.write_manifest(os.path.join(repo, "saved_models"))
  print(presets.table())
  print(f"-> {presets.MANIFEST}")
