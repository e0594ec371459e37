"""Errors raised by cardiolens.

Every problem with a user's input surfaces as a :class:`CardiolensError` whose message names the
file (or the argument) and the problem, so that nobody has to read a numpy traceback to learn that
a header lies or a lead is missing.
"""

from __future__ import annotations

from pathlib import Path


class CardiolensError(Exception):
    """Base class of every error cardiolens raises on purpose."""


class RecordError(CardiolensError, ValueError):
    """A recording (file or array) that cannot be read or does not meet the input contract.

    Args:
        problem: what is wrong, in words a user understands.
        source: the file (or a description of the array) the problem was found in.
    """

    def __init__(self, problem: str, source: str | Path | None = None):
        self.problem = problem
        self.source = None if source is None else str(source)
        super().__init__(f"{self.source}: {problem}" if self.source else problem)


class UnknownFormatError(RecordError):
    """The file's content matches none of the formats cardiolens reads."""


class DatasetError(CardiolensError, ValueError):
    """A dataset folder that does not follow its publisher's layout."""


class CheckpointError(CardiolensError, ValueError):
    """A checkpoint (ours or a foreign one being imported) that cannot be read or does not match its model.

    Args:
        problem: what is wrong, in words a user understands.
        source: the file or folder the problem was found in.
    """

    def __init__(self, problem: str, source: str | Path | None = None):
        self.problem = problem
        self.source = None if source is None else str(source)
        super().__init__(f"{self.source}: {problem}" if self.source else problem)


class ModelInputError(CardiolensError, ValueError):
    """Input to a model or to generation (tokens, context, sampling settings) that breaks its contract."""
