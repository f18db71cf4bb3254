"""Error types. Every error a user can cause is one of these; the CLI prints them as one line."""

from __future__ import annotations

import difflib
from dataclasses import dataclass


@dataclass(frozen=True)
class Location:
    """Where a value came from: a file position (1-based line and column) or an override."""

    source: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        if self.line is None:
            return self.source
        return f"{self.source}:{self.line}:{self.column}"


class PimsimError(Exception):
    """Base class of every error pimsim raises for bad user input."""


class SpecError(PimsimError):
    """A YAML file, an override or a value in it is invalid.

    ``location`` names the file position (or override), ``field`` the dotted field path (may be
    empty when the whole file is at fault), ``message`` what is wrong and what is expected.
    """

    def __init__(self, message: str, location: Location | None = None, field: str = "") -> None:
        self.message = message
        self.location = location
        self.field = field
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = []
        if self.location is not None:
            parts.append(str(self.location))
        if self.field:
            parts.append(self.field)
        parts.append(self.message)
        return ": ".join(parts)


class SpecErrors(SpecError):
    """Several independent errors found in one file; ``errors`` lists them in file order."""

    def __init__(self, errors: list[SpecError]) -> None:
        self.errors = errors
        first = errors[0]
        super().__init__(first.message, first.location, first.field)

    def __str__(self) -> str:
        return "\n".join(SpecError.__str__(e) for e in self.errors)


class WorkloadError(PimsimError):
    """A network cannot be represented (unsupported op, inconsistent shapes, unknown zoo name)."""


class MappingError(PimsimError):
    """A network cannot be mapped onto an accelerator (e.g. it does not fit a fixed-size chip)."""


class StoreError(PimsimError):
    """A results store cannot be used: the file is not a pimsim store (not sqlite, another
    program's database, a newer format), it is damaged, or the disk refuses a write. The message
    names the file, says what it is and what to do; pimsim never modifies such a file."""


def did_you_mean(word, options) -> str:
    """``"; did you mean 'x'?"`` for the option closest to ``word`` (case-insensitive), or ``""``
    when none is close: the hint every "unknown name" error of pimsim ends with."""
    lowered = {str(o).lower(): str(o) for o in options}
    close = difflib.get_close_matches(str(word).lower(), list(lowered), n=1, cutoff=0.6)
    return f"; did you mean '{lowered[close[0]]}'?" if close else ""
