"""The checks of `LrcSSM`'s constructor arguments, and the neuron factory a name
stands for."""

import jax.numpy as jnp
import jax.random as jr

from .._checks import check_choice, check_integer, check_positive
from .._discretise import AbstractDiscretisation, ClosedForm
from .._neurons.base import AbstractLiquidNeuron
from .._neurons.registry import NEURONS
from .._neurons.timescale import TimeScaled
from .._solve.base import AbstractLiquidSolver
from ._mlp import ACTIVATIONS, INITS


TASKS = ("classification", "regression")
RESIDUALS = ("input", "normalised")
READOUTS = ("mean", "last", "per_step")
DEFAULTS_0_2 = dict(
    neuron_init="reference", time_scales=None, residual="input", init="equinox"
)
r"""The `LrcSSM` arguments that rebuild the 0.2 model from the current defaults:
the paper's LRC initialisation, one global step $\Delta t$ for every neuron, and the
block's MLP output added to the raw block input, and Equinox's initialisation of the
MLPs. `LrcSSM(..., **DEFAULTS_0_2)`; on the command line `--neuron-init reference
--time-scales none --residual input --init equinox`. The benchmarks compare the
current defaults against it."""


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
    time_scales=None,
    readout=None,
) -> None:
    """Raise a clear error for an argument of the wrong kind or value."""
    for name, value in sizes.items():
        check_integer(name, value)
    if not isinstance(solver, AbstractLiquidSolver):
        raise TypeError(
            "`solver` must be an `lrc_toolkit.AbstractLiquidSolver` such as "
            "`lrc_toolkit.ParallelNewton()`, `Sequential()` or "
            f"`ODE(diffrax.Euler())`, got {solver!r}."
        )
    check_choice("task", task, TASKS)
    check_choice("activation", activation, ACTIVATIONS)
    check_choice("residual", residual, RESIDUALS)
    check_choice("init", init, INITS)
    if readout is not None:
        check_choice("readout", readout, READOUTS)
    if time_scales is not None:
        ok = isinstance(time_scales, tuple | list) and len(time_scales) == 2
        ok = ok and all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in time_scales
        )
        if not (ok and 0 < time_scales[0] <= time_scales[1]):
            raise ValueError(
                "`time_scales` must be `None` or `(low, high)` with "
                f"0 < low <= high, got {time_scales!r}."
            )
    if not isinstance(norm_affine, bool):
        raise TypeError(f"`norm_affine` must be a bool, got {norm_affine!r}.")
    check_positive("dt", dt)
    if discretisation is not None and not isinstance(
        discretisation, AbstractDiscretisation
    ):
        raise TypeError(
            "`discretisation` must be an `lrc_toolkit.AbstractDiscretisation` such "
            f"as `Euler()`, got {type(discretisation).__name__}."
        )


def neuron_factory(neuron, neurons, dtype: jnp.dtype, init: str | None = None):
    """`(factory, name)`: the factory `factory(D, H, key=key)` that `neuron` (a name
    or a factory) stands for, and the name to record (`None` for a factory). A
    named neuron gets `init=init` unless `init` is `None`."""
    if init is not None and not isinstance(neuron, str):
        raise ValueError(
            "`neuron_init` applies to named neurons only; choose the initialisation "
            "inside your neuron factory instead."
        )
    if isinstance(neuron, str):
        known = {**NEURONS, **(neurons or {})}
        if neuron not in known:
            raise ValueError(
                f"Unknown neuron {neuron!r}; use one of {sorted(known)}, pass a "
                "factory `neuron(state_size, input_size, key=key)`, or name your "
                "own with `neurons={name: factory}`."
            )
        named = known[neuron]
        if init is None:
            return (lambda D, P, *, key: named(D, P, dtype=dtype, key=key)), neuron

        def with_init(D, P, *, key):
            try:
                return named(D, P, dtype=dtype, init=init, key=key)
            except TypeError as e:
                if "init" not in str(e):
                    raise
                raise ValueError(
                    f"The neuron {neuron!r} has no `init` option; leave "
                    "`neuron_init=None` (`--init` on the command line) for it."
                ) from None

        return with_init, neuron
    if callable(neuron):
        return neuron, None
    raise TypeError(
        "`neuron` must be a name from `lrc_toolkit.models.NEURONS` or a "
        f"callable factory, got {type(neuron).__name__}."
    )


# The share of each layer's neurons whose time scale starts at the fast end: a
# log-uniform spread alone stalled a frequency task for 8 epochs on two of three
# seeds, half fast learned it on all three (benchmarks/learning/).
FAST_FRACTION = 0.5


def time_scaled(factory, scale_range: tuple[float, float]):
    """`factory` whose neurons learn a time scale per state component
    ([`TimeScaled`][lrc_toolkit.TimeScaled]): half of them start at `high`, the
    others log-uniform over `scale_range`; `max_scale` is `max(1, 2 * high)`. The
    neuron gets the same key as without time scales (the scales a key folded
    from it)."""

    def factory_with_scales(D, P, *, key):
        neuron = factory(D, P, key=key)
        if not isinstance(neuron, AbstractLiquidNeuron):
            return neuron  # `LiquidBlock` names what the factory returned
        return TimeScaled(
            neuron,
            scale_range=scale_range,
            max_scale=max(1.0, 2 * scale_range[1]),
            fast_fraction=FAST_FRACTION,
            key=jr.fold_in(key, 1),
        )

    return factory_with_scales


def unwrapped(neuron):
    """The neuron inside a [`TimeScaled`][lrc_toolkit.TimeScaled] (or `neuron`)."""
    return neuron.neuron if isinstance(neuron, TimeScaled) else neuron


def chosen_discretisation(neuron, discretisation):
    """The model's discretisation: `discretisation`, or the neuron's default when it
    is `None`; a closed-form cell (CfC) is evaluated by its closed form and only
    such a cell is (a neuron defined by its vector field has none)."""
    default = neuron.default_discretisation()
    if discretisation is None:
        return default
    if isinstance(default, ClosedForm) != isinstance(discretisation, ClosedForm):
        raise ValueError(
            f"{type(unwrapped(neuron)).__name__} is "
            + ("" if isinstance(default, ClosedForm) else "not ")
            + "a closed-form cell: use `discretisation=ClosedForm()` with closed-"
            "form cells (CfC) and only with them; got "
            f"{type(discretisation).__name__}."
        )
    return discretisation
