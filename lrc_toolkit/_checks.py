"""Argument checks shared by the neurons, solvers, model and training loop: each
message is written once here."""

import math
import numbers
from collections.abc import Collection


def check_choice(name: str, value, choices: Collection) -> None:
    """Raise `ValueError` unless `value` is one of `choices` (an argument `name`)."""
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {tuple(choices)}, got {value!r}.")


def check_integer(
    name: str, value, *, minimum: int = 1, note: str = "", any_integral=False
) -> int:
    """Return `value` as an `int`; raise `ValueError` unless it is a Python `int`
    (not `bool`; with `any_integral`, NumPy's integers too, for a caller that keeps
    the returned `int`) of at least `minimum` (an argument `name`; `note` is added
    to the message, e.g. what 0 means)."""
    kinds = numbers.Integral if any_integral else int
    if isinstance(value, bool) or not isinstance(value, kinds) or value < minimum:
        kind = {1: "a positive integer", 0: "a non-negative integer"}.get(
            minimum, f"an integer >= {minimum}"
        )
        raise ValueError(f"`{name}` must be {kind}{note}, got {value!r}.")
    return int(value)


def check_positive(name: str, value, *, or_none: bool = False) -> None:
    """Raise `ValueError` unless `value` is a finite positive real number (not
    `bool`; an argument `name`; `or_none`: the message says `None` is allowed too,
    which the caller checks)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value <= 0
    ):
        also = " or None" if or_none else ""
        raise ValueError(
            f"`{name}` must be a finite positive number{also}, got {value!r}."
        )
