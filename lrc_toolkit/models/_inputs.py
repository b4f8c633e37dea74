"""The checks of a sequence given to `LrcSSM`, and its step sizes."""

import jax.numpy as jnp
from jaxtyping import Array, Float

from .._solve.solve import steps_from_times


def check_inputs(x, mask, input_size: int, dtype):
    """`(x, mask)` checked, `x` cast to `dtype` and zero at padded steps."""
    x = jnp.asarray(x)
    if x.ndim != 2 or x.shape[1] != input_size:
        raise ValueError(
            f"`x` must have shape (T, {input_size}) = (time steps, input "
            f"channels) for one sequence; got shape {x.shape}. For a batch use "
            "`jax.vmap(model)(xs, masks)`."
        )
    if x.shape[0] == 0:
        raise ValueError("`x` has no time steps.")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"`x` must be a floating array, got dtype {x.dtype}.")
    x = x.astype(dtype)
    if mask is not None:
        mask = jnp.asarray(mask)
        if mask.shape != x.shape[:1] or mask.dtype != jnp.bool_:
            raise ValueError(
                f"`mask` must be a boolean array of shape ({x.shape[0]},) (True on "
                f"real steps, False on padding), got {mask.dtype} of shape "
                f"{mask.shape}."
            )
        # Padding (possibly garbage or NaN) is replaced by zeros, so that it can
        # never reach the computation; being after the real steps, it cannot
        # influence them through the causal recurrence.
        x = jnp.where(mask[:, None], x, 0)
    return x, mask


def step_sizes(T: int, ts, mask, dt: float, dtype) -> Float[Array, " T"]:
    """The step sizes: from the time stamps `ts` (their differences, the first
    step repeating the second) or the constant `dt`. Padded steps (`mask` False)
    step by `dt`, whatever their time stamps: they come after the real ones and
    cannot influence them."""
    if ts is None:
        return jnp.full((T,), dt, dtype)
    ts = jnp.asarray(ts, dtype)
    if ts.shape != (T,):
        raise ValueError(
            f"`ts` must have one time stamp per step, shape ({T},); got {ts.shape}."
        )
    steps = steps_from_times(ts, dt)
    if mask is not None:
        steps = jnp.where(mask, steps, jnp.asarray(dt, dtype))
    return steps
