"""The checks of `LrcSSM`'s constructor arguments, and the neuron factory a name
stands for."""

import jax.numpy as jnp

from .._discretise import AbstractDiscretisation
from .._neurons.registry import NEURONS
from .._solve.base import AbstractLiquidSolver
from ._mlp import ACTIVATIONS, INITS


TASKS = ("classification", "regression")
RESIDUALS = ("input", "normalised")


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")


def check_arguments(
    *,
    sizes: dict[str, int],
    solver,
    discretisation,
    task,
    dt,
    activation,
    norm_affine,
    residual,
    init,
) -> None:
    """Raise a clear error for an argument of the wrong kind or value."""
    for name, value in sizes.items():
        _positive_int(name, value)
    if not isinstance(solver, AbstractLiquidSolver):
        raise TypeError(
            "`solver` must be an `lrc_toolkit.AbstractLiquidSolver` such as "
            "`lrc_toolkit.ParallelNewton()`, `Sequential()` or "
            f"`ODE(diffrax.Euler())`, got {solver!r}."
        )
    if task not in TASKS:
        raise ValueError(f"`task` must be one of {TASKS}, got {task!r}.")
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"`activation` must be one of {tuple(ACTIVATIONS)}, got {activation!r}."
        )
    if residual not in RESIDUALS:
        raise ValueError(f"`residual` must be one of {RESIDUALS}, got {residual!r}.")
    if init not in INITS:
        raise ValueError(f"`init` must be one of {INITS}, got {init!r}.")
    if not isinstance(norm_affine, bool):
        raise TypeError(f"`norm_affine` must be a bool, got {norm_affine!r}.")
    if not isinstance(dt, int | float) or isinstance(dt, bool) or not dt > 0:
        raise ValueError(f"`dt` must be a positive number, got {dt!r}.")
    if discretisation is not None and not isinstance(
        discretisation, AbstractDiscretisation
    ):
        raise TypeError(
            "`discretisation` must be an `lrc_toolkit.AbstractDiscretisation` such "
            f"as `Euler()`, got {type(discretisation).__name__}."
        )


def neuron_factory(neuron, neurons, dtype: jnp.dtype):
    """`(factory, name)`: the factory `factory(D, H, key=key)` that `neuron` (a name
    or a factory) stands for, and the name to record (`None` for a factory)."""
    if isinstance(neuron, str):
        known = {**NEURONS, **(neurons or {})}
        if neuron not in known:
            raise ValueError(
                f"Unknown neuron {neuron!r}; use one of {sorted(known)}, pass a "
                "factory `neuron(state_size, input_size, key=key)`, or name your "
                "own with `neurons={name: factory}`."
            )
        named = known[neuron]
        return (lambda D, P, *, key: named(D, P, dtype=dtype, key=key)), neuron
    if callable(neuron):
        return neuron, None
    raise TypeError(
        "`neuron` must be a name from `lrc_toolkit.models.NEURONS` or a "
        f"callable factory, got {type(neuron).__name__}."
    )
