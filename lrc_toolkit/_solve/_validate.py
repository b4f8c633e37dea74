"""The checks of a solve's arguments, made once before any solver runs: shapes and
dtypes at trace time, finiteness and positive steps at run time."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Inexact, Real

from .._discretise import AbstractDiscretisation
from .._neurons.base import AbstractLiquidNeuron


def check_neuron(neuron) -> None:
    if not isinstance(neuron, AbstractLiquidNeuron):
        raise TypeError(
            "`neuron` must be an `lrc_toolkit.AbstractLiquidNeuron` (e.g. `LRC(...)`), "
            f"got {type(neuron).__name__}."
        )


def check_discretisation(discretisation) -> None:
    if not isinstance(discretisation, AbstractDiscretisation):
        raise TypeError(
            "`discretisation` must be an `lrc_toolkit.AbstractDiscretisation` such as "
            "`Euler()`, `SemiImplicitEuler()` or `DiffraxStep(diffrax.Heun())`, got "
            f"{type(discretisation).__name__}."
        )


def check_vector_field(neuron, x, u) -> None:
    """Trace `vector_field` once (no computation) and check that it returns the
    shape and dtype of the state, before any solver combines it with `x` (where a
    wrong shape would surface as an obscure broadcasting error)."""
    out = jax.eval_shape(neuron.vector_field, x, u)
    if getattr(out, "shape", None) != x.shape or getattr(out, "dtype", None) != x.dtype:
        got = (
            f"shape {out.shape} and dtype {out.dtype}"
            if hasattr(out, "shape")
            else f"a {type(out).__name__}"
        )
        raise ValueError(
            f"{type(neuron).__name__}.vector_field(x, u) returned {got} for a state "
            f"of shape {x.shape} and dtype {x.dtype}; `vector_field(x, u)` must return "
            "an array of the same shape and dtype as `x`. Check matrix orientations "
            "(W @ u for W of shape (state_size, input_size)), that the parameters "
            "have the state's dtype, and that no constant of another dtype is mixed "
            "in (cast with `.astype(x.dtype)`)."
        )


def validate(
    neuron: AbstractLiquidNeuron,
    x0,
    inputs,
    dt=None,
    *,
    name_inputs="inputs",
) -> tuple[Inexact[Array, " D"], Inexact[Array, "T P"], Real[Array, " T"] | None]:
    """Check shapes and finiteness of a solver's arguments; return them as arrays.

    Shape errors are raised at trace time as `ValueError`; non-finite values (and
    non-positive steps) at run time, by one
    `eqx.branched_error_if` (see `checked`).
    """
    x0, inputs = as_arrays(neuron, x0, inputs, name_inputs=name_inputs)
    if dt is not None:
        dt = as_steps(dt, x0, inputs)
    return checked(x0, inputs, dt, name_inputs=name_inputs)[:3]


def as_arrays(neuron, x0, inputs, *, name_inputs="inputs"):
    """`x0` and `inputs` as arrays of the right shapes and an inexact dtype
    (trace-time checks only)."""
    check_neuron(neuron)
    inputs = jnp.asarray(inputs)
    if not jnp.issubdtype(inputs.dtype, jnp.inexact):
        inputs = inputs.astype(jax.dtypes.canonicalize_dtype(float))
    if inputs.ndim != 2:
        raise ValueError(
            f"`{name_inputs}` must have shape (T, {neuron.input_size}) = (time steps, "
            f"input channels) for one sequence; got shape {inputs.shape}. For a batch of "
            "sequences use `jax.vmap`; for a single time step add a time axis with "
            "`inputs[None]`."
        )
    if inputs.shape[1] != neuron.input_size:
        raise ValueError(
            f"`{name_inputs}` has {inputs.shape[1]} channels (shape {inputs.shape}), but "
            f"the neuron has input_size={neuron.input_size}: expected shape "
            f"(T, {neuron.input_size})."
        )
    if inputs.shape[0] == 0:
        raise ValueError(f"`{name_inputs}` has no time steps (shape {inputs.shape}).")
    x0 = jnp.asarray(x0)
    if x0.shape != (neuron.state_size,):
        raise ValueError(
            f"`x0` must have shape ({neuron.state_size},) (the neuron's state_size), "
            f"got {x0.shape}."
        )
    if not jnp.issubdtype(x0.dtype, jnp.inexact):
        x0 = x0.astype(inputs.dtype)
    check_vector_field(neuron, x0, inputs[0])
    return x0, inputs


def as_steps(dt, x0, inputs) -> Real[Array, " T"]:
    """`dt` as one real step per time step (its shape checked at trace time; that
    the steps are finite and positive, by `checked`)."""
    dt = jnp.asarray(dt)
    real = jnp.finfo(x0.dtype).dtype
    dt = dt.astype(real)
    if dt.ndim == 0:
        return jnp.broadcast_to(dt, inputs.shape[:1])
    if dt.shape != inputs.shape[:1]:
        raise ValueError(
            f"`dt` must be a scalar or have one value per time step, shape "
            f"({inputs.shape[0]},); got shape {dt.shape}."
        )
    return dt


def checked(x0, inputs, dt=None, ts=None, *, name_inputs="inputs"):
    """`(x0, inputs, dt, ts)` tied to their run-time checks: finite values, finite
    and positive steps, finite time stamps (`dt` and `ts` may be `None`). One
    `eqx.branched_error_if` for all of them, which raises the first failed check's
    message: each error check is a conditional host callback in the compiled
    program, and XLA's compile time grows with every one."""
    failed, messages = [], []

    def check(bad, message):
        failed.append(bad)
        messages.append(message)

    check(
        ~jnp.all(jnp.isfinite(inputs)),
        f"`{name_inputs}` contains NaN or infinite values; clean or impute them first.",
    )
    check(~jnp.all(jnp.isfinite(x0)), "`x0` contains NaN or infinite values.")
    # before `dt`: steps from non-finite time stamps are not finite either
    if ts is not None:
        check(~jnp.all(jnp.isfinite(ts)), "`ts` contains NaN or infinite values.")
    if dt is not None:
        check(
            ~jnp.all(jnp.isfinite(dt) & (dt > 0)),
            "`dt` must be finite and positive (with `ts`: strictly increasing time "
            "stamps).",
        )
    failed = jnp.stack(failed)
    return eqx.branched_error_if(
        (x0, inputs, dt, ts), jnp.any(failed), jnp.argmax(failed), messages
    )
