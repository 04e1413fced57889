"""The zoo's user-facing errors: one base class, so that the scripts can tell a mistake in
what the user gave (shown as one line) from a bug (shown with its traceback).

Every error here says which input was wrong and what was expected, in the form
"Invalid value for `batch_size`: expected ... Received: batch_size=7". They subclass the
matching built-in (`ValueError`, `FileNotFoundError`, ...) as well, so code that caught
those before still does. `zoo.cli.run` prints a `ZooError` as `error: <message>` and exits
with status 2 for a `UsageError` (a command line that cannot run), 1 for the others.
"""

from __future__ import annotations

import difflib
from typing import Iterable


class ZooError(Exception):
  """Base of every error the zoo raises about its user's input, data or files."""


class UsageError(ZooError):
  """The command line itself is wrong (an unknown recipe, flag value or dataset spec)."""


class InvalidValueError(ZooError, ValueError):
  """An argument, config field or input array is not what the zoo expects."""


class NotFoundError(ZooError, FileNotFoundError):
  """A file or directory the user named does not exist or is not what was expected."""


class AlreadyExistsError(ZooError, FileExistsError):
  """Writing would replace something that exists (an exported version)."""


def did_you_mean(value, choices: Iterable[str]) -> str:
  """` Did you mean 'mnist_cnn'?` for the closest of `choices` to a mistyped `value`, or ""
  when none is close (difflib's ratio >= 0.6). It ends the message it is added to."""
  close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
  return f" Did you mean {close[0]!r}?" if close else ""
