"""Argument checks shared by the neurons, solvers, model and training loop: each
message is written once here."""

from collections.abc import Collection


def check_choice(name: str, value, choices: Collection) -> None:
    """Raise `ValueError` unless `value` is one of `choices` (an argument `name`)."""
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {tuple(choices)}, got {value!r}.")
