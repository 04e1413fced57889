"""Classes by name: how a head trained on one list of class names is carried to another.

A class is its name, never its index. Two lists are matched after `clean` (Unicode NFC,
surrounding white space dropped, case folded), so a folder's `Cat/` is a source's `cat`;
a list in which two names clean to the same key cannot be matched and is refused. The plan
(`match`) says, for each class of the new list, which row of the source's head it takes:

  carried     the same name at the same index
  reordered   the same name at another index (the row moves to the new index)
  new         a name the source does not have (the row keeps its fresh initialization)

Standard library only: the data floor (folders, COCO files) and `zoo.finetune` both use it.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from typing import Optional, Sequence

from zoo import errors


def clean(name: str) -> str:
  """The key two class names are compared by: NFC, stripped, case-folded."""
  return unicodedata.normalize("NFC", name).strip().casefold()


def collisions(names: Sequence[str]) -> list[tuple[str, str]]:
  """Pairs of names in `names` that clean to the same key (first two of each key)."""
  seen: dict[str, str] = {}
  pairs = []
  for name in names:
    key = clean(name)
    if key in seen:
      pairs.append((seen[key], name))
    else:
      seen[key] = name
  return pairs


def check(names, what: str, fix: str) -> list[str]:
  """`names` as a list of distinct, non-empty class names, or one line naming `what`.

  Args:
    names: what a card, run card or folder gives as its class names.
    what: where they come from, for the error (`'runs/a' (its model_card.json labels)`).
    fix: what would work instead, the error's last sentence.

  Raises:
    zoo.errors.InvalidValueError: not a list of strings, an empty name, or two names that
      clean to the same key.
  """
  if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
    kind = type(names).__name__ if not isinstance(names, (list, tuple)) else (
        "a list holding " + ", ".join(sorted({type(n).__name__ for n in names
                                              if not isinstance(n, str)})))
    raise errors.InvalidValueError(f"Invalid class names in {what}: expected a list of "
                                   f"names (strings), found {kind}. {fix}")
  if not names or any(not clean(n) for n in names):
    raise errors.InvalidValueError(f"Invalid class names in {what}: expected non-empty "
                                   f"names, found {len(names)} with "
                                   f"{sum(not clean(n) for n in names)} empty. {fix}")
  pairs = collisions(names)
  if pairs:
    (a, b), more = pairs[0], len(pairs) - 1
    raise errors.InvalidValueError(
        f"Invalid class names in {what}: {a!r} and {b!r} are one class when names are "
        "compared (case and surrounding spaces ignored)"
        f"{f' (and {more} more pair(s))' if more else ''}. {fix}")
  return list(names)


@dataclasses.dataclass(frozen=True)
class Plan:
  """Which source row each new class takes (`rows[j]`: the source index, or None: new).

  Attributes:
    names: the new classes, in the new order.
    source_names: the source's classes, in its order.
    rows: for each new class, the source row it takes, or None.
  """
  names: tuple
  source_names: tuple
  rows: tuple

  @property
  def carried(self) -> list[str]:
    return [n for j, (n, i) in enumerate(zip(self.names, self.rows)) if i == j]

  @property
  def reordered(self) -> dict[str, list[int]]:
    """`{name: [source index, new index]}` for names that moved."""
    return {n: [i, j] for j, (n, i) in enumerate(zip(self.names, self.rows))
            if i is not None and i != j}

  @property
  def new(self) -> list[str]:
    return [n for n, i in zip(self.names, self.rows) if i is None]

  @property
  def any_shared(self) -> bool:
    return any(i is not None for i in self.rows)

  def describe(self) -> dict:
    """The run card's `init_from.classes`."""
    return {"carried": self.carried, "reordered": self.reordered, "new": self.new,
            "source": list(self.source_names)}


def match(names: Sequence[str], source_names: Sequence[str]) -> Plan:
  """The plan carrying a head trained on `source_names` to `names` (both `check`ed)."""
  index = {clean(n): i for i, n in enumerate(source_names)}
  rows: list[Optional[int]] = [index.get(clean(n)) for n in names]
  return Plan(tuple(names), tuple(source_names), tuple(rows))
