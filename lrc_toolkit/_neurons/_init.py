import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, PRNGKeyArray


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
