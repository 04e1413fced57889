"""Tasks: what differs between classification, generation and detection.

`train_and_evaluate`, `evaluate_run`, `export_run` and `zoo.load` are one function each
for every task: each looks the task up once, here, and the task supplies its datasets,
how its model is compiled, its callbacks, its exported functions, its evaluator and its
front (see `zoo.tasks.base.Task` for the interface and the path written once for all).
A recipe names its task in `TrainConfig.task`; task knobs live in `TrainConfig.task_kwargs`.
Adding a task: a module with a `Task` subclass, and one line in `TASKS`.
"""

from __future__ import annotations

from zoo import errors
from zoo.tasks import classification, detection, generation
from zoo.tasks.base import Task

TASKS: dict[str, Task] = {
    "classification": classification.TASK,
    "generation": generation.TASK,
    "detection": detection.TASK,
}

# Model cards written before the task seam say `image_classification`.
_CARD_ALIASES = {"image_classification": "classification"}


def get(name: str) -> Task:
  """The task called `name`; unknown names fail with the list of valid ones."""
  if name not in TASKS:
    raise errors.InvalidValueError(f"Invalid value for `task`: expected one of "
                                   f"{sorted(TASKS)}. Received: task={name!r}")
  return TASKS[name]


def for_card(card: dict) -> Task:
  """The task of an exported model, from its model card's `task`."""
  name = _CARD_ALIASES.get(card.get("task"), card.get("task"))
  if name not in TASKS:
    raise errors.InvalidValueError(
        f"Model card of {card.get('name')!r} names task {card.get('task')!r}; this zoo "
        f"knows {sorted(TASKS)}.")
  return TASKS[name]
