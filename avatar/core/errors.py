"""Errors the user can fix. The CLI prints them as one line and exits with code 2."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable


class AvatarInputError(ValueError):
    """Bad input: the message says what is wrong and what to do about it."""


def print_summary(make_summary: Callable[[], dict], as_json: bool = False) -> int:
    """A script's ending: print ``make_summary()`` as JSON (one line with ``as_json``) and return 0, or print an
    :class:`AvatarInputError` as one ``error: ...`` line on stderr and return 2.

    Example:
        >>> sys.exit(print_summary(lambda: build(args.out, args.force), args.json))  # doctest: +SKIP
    """
    try:
        summary = make_summary()
    except AvatarInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(summary) if as_json else json.dumps(summary, indent=1))
    return 0
