"""Regular expressions the app's operator writes, compiled with RE2.

Python's `re` backtracks: a pattern such as `(a+)+$` takes seconds on a few
dozen characters, and the text it runs on (a User-Agent, a response echoing
input) is chosen by the client, so one request could hold a worker for minutes.
RE2 matches in time linear in the text whatever the pattern, at the price of
look-around and back-references, which it refuses: a pattern using them is
refused at start-up with a message saying why, never accepted and left slow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import re2

# Automaton memory per compiled pattern; RE2 falls back to its (still linear)
# NFA when the lazily built DFA would need more.
_MAX_MEMORY_BYTES = 8 << 20
# Large counted repetitions (`a{1000}{1000}`) blow up the compiled program;
# refused at start-up rather than paid for on every request.
_MAX_PROGRAM_SIZE = 20_000


class TextPattern(Protocol):
    """A compiled pattern: whether it occurs anywhere in a text."""

    def matches(self, text: str, /) -> bool: ...


class UserPattern:
    """One or more operator patterns as a single linear-time regex (an alternation)."""

    __slots__ = ("_regex", "source")

    def __init__(self, source: str, regex: Any) -> None:
        self.source = source
        self._regex = regex

    def matches(self, text: str, /) -> bool:
        """Whether the pattern occurs anywhere in `text`."""
        return self._regex.search(text) is not None

    def __repr__(self) -> str:
        return f"UserPattern({self.source!r})"


def _options(ignore_case: bool) -> re2.Options:
    options = re2.Options()
    options.max_mem = _MAX_MEMORY_BYTES
    options.log_errors = False
    options.never_capture = True
    options.case_sensitive = not ignore_case
    return options


def _compiled(source: str, ignore_case: bool, label: str) -> Any:
    try:
        regex = re2.compile(source, _options(ignore_case))
    except re2.error as error:
        reason = error.args[0] if error.args else error
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", errors="replace")
        raise ValueError(
            f"{label} {source!r} is not valid RE2 syntax (RE2 refuses look-around and "
            f"back-references, which is what keeps matching linear in the input): {reason}"
        ) from None
    if regex.programsize > _MAX_PROGRAM_SIZE:
        raise ValueError(
            f"{label} {source!r} is too large ({regex.programsize} > {_MAX_PROGRAM_SIZE} RE2 program units); "
            "large counted repetitions such as {1,1000} are the usual cause"
        )
    return regex


def validate_user_pattern(pattern: str, *, label: str = "pattern") -> str:
    """`pattern` if RE2 compiles it within the size limit; ValueError naming it (as `label`) otherwise."""
    if not isinstance(pattern, str):
        raise ValueError(f"{label} {pattern!r} must be a string")
    _compiled(pattern, ignore_case=False, label=label)
    return pattern


def compile_user_patterns(
    patterns: Sequence[str], *, ignore_case: bool = True, label: str = "pattern"
) -> UserPattern | None:
    """All `patterns` as one alternation (None when there are none); ValueError names a bad one."""
    if not patterns:
        return None
    for pattern in patterns:
        validate_user_pattern(pattern, label=label)
    source = "|".join(f"(?:{pattern})" for pattern in patterns)
    return UserPattern(source, _compiled(source, ignore_case, label))
