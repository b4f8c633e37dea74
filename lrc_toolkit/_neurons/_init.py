import math

import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, PRNGKeyArray

from .._checks import check_integer


def default_float(dtype) -> jnp.dtype:
    """The dtype to create parameters in: `dtype`, or JAX's default float."""
    if dtype is None:
        return jnp.dtype(jax.dtypes.canonicalize_dtype(float))
    dtype = jnp.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.inexact):
        raise ValueError(f"`dtype` must be a floating dtype, got {dtype}.")
    return dtype


def uniform(key: PRNGKeyArray, shape, low, high, dtype) -> Array:
    return jr.uniform(key, shape, dtype=dtype, minval=low, maxval=high)


def inv_softplus(y: Array) -> Array:
    """The inverse of `jax.nn.softplus`, for positive `y`."""
    return y + jnp.log(-jnp.expm1(-y))


def check_sizes(state_size, input_size) -> None:
    """Raise `ValueError` unless both sizes are positive integers (not `bool`)."""
    check_integer("state_size", state_size)
    check_integer("input_size", input_size)


def elastance(kind: str, pre: Array, half_width: Array | None) -> Array:
    r"""The liquid capacitance's elastance $\epsilon$ from its pre-activation `pre`:
    `"asymmetric"` $\sigma(\text{pre})$, `"symmetric"`
    $\sigma(\text{pre} + |s|) - \sigma(\text{pre} - |s|)$ with $s$ = `half_width`.
    The absolute value keeps a real elastance $\ge 0$, so that $A \le 0$. `pre` may
    be complex; `half_width` is real and cast to its dtype after the absolute value.
    """
    if kind == "asymmetric":
        return jax.nn.sigmoid(pre)
    if kind != "symmetric":
        raise ValueError(f"unknown elastance {kind!r}")
    width = jnp.abs(half_width).astype(pre.dtype)
    return jax.nn.sigmoid(pre + width) - jax.nn.sigmoid(pre - width)


def centred_normal(key: PRNGKeyArray, D: int, P: int, dtype) -> Array:
    """Input weights of the responsive initialisation: $N(0, 4/P)$ with each row's
    mean removed, so that $W s_u$ moves by about one unit with the input while its
    average over inputs is zero (the synapses' mean activation $1/2$ adds no bias)."""
    w = 2 / math.sqrt(P) * jr.normal(key, (D, P), dtype)
    return w - jnp.mean(w, axis=1, keepdims=True)
