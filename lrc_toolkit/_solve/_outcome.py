"""A solve's outcome from its states: finiteness and the `RESULTS` member every
solver reports the same way (the step factors' check: `_linearise.check_after_scan`
and the solvers' loops)."""

import jax.numpy as jnp
from jaxtyping import Array


def overflow_bound(dtype) -> Array:
    """Past $\\sqrt{\\text{max float}}$ products of states overflow: treated as
    overflow."""
    real = jnp.finfo(dtype).dtype
    return jnp.sqrt(jnp.finfo(real).max).astype(real)


def all_finite(states: Array) -> Array:
    """Whether every state is finite and below the overflow bound."""
    return jnp.all(jnp.isfinite(states)) & (
        jnp.max(jnp.abs(states), initial=0) < overflow_bound(states.dtype)
    )


def outcome(finite, unstable, otherwise=None, misdeclared=None):
    """The `RESULTS` member for a solve: a Jacobian that is not of the declared
    structure (`misdeclared`, the root cause of what follows) beats non-finite
    states, which beat an unstable step, which beats the solver's own outcome
    (`otherwise`, default successful)."""
    from .._solution import RESULTS

    otherwise = RESULTS.successful if otherwise is None else otherwise
    result = RESULTS.where(
        finite,
        RESULTS.where(unstable, RESULTS.unstable_step, otherwise),
        RESULTS.nonfinite_states,
    )
    if misdeclared is None:
        return result
    return RESULTS.where(misdeclared, RESULTS.jacobian_structure_mismatch, result)
