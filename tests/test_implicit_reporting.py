"""Convergence and failure reporting of implicit steps on short stiff sequences.

A review that planted bugs found the suite blind here: the explicit-step rule
"after k Newton iterations the first k states are exact" must not end an
implicit solve (its states solve a root find, not a forward recurrence), and a
per-step root find that fails must be reported, not returned as a number. The
references are numpy: a scalar Newton iteration per step to machine precision."""

from typing import ClassVar

import jax.numpy as jnp
import numpy as np
import pytest
from jaxtyping import Array, Float

import lrc_toolkit as lt


class _Stiff(lt.AbstractLiquidNeuron):
    """dx/dt = -k (x + x^3) + u: stiff for k Δt >> 1, and strongly non-linear at
    |x| ~ 1, so that Newton on the whole trajectory needs several iterations."""

    k: Float[Array, " D"]
    state_size: int = 2
    input_size: int = 2
    jacobian_structure: ClassVar[str] = "diagonal"

    def vector_field(self, x, u):
        return -self.k * (x + x**3) + u


K = np.array([50.0, 200.0])


def _backward_euler(x0, inputs, dt):
    """Each step's root of r(y) = y - x - dt (-k (y + y^3) + u), in numpy."""
    x, out = np.asarray(x0, float), []
    for u in np.asarray(inputs):
        y = x.copy()
        for _ in range(200):
            r = y - x - dt * (-K * (y + y**3) + u)
            y = y - r / (1 + dt * K * (1 + 3 * y**2))
        out.append(y)
        x = y
    return np.stack(out)


@pytest.mark.parametrize("T", [1, 2, 3])
def test_short_stiff_sequence_converges_to_the_roots(T):
    """T <= 3 steps at k Δt = 50 and 200: ParallelNewton needs more than T
    iterations (so stopping at T, right for an explicit step, would be wrong; and
    so would the explicit default `max_iters = T`, which made T = 1 and 2 fail
    here), and both solvers return the roots and say so."""
    neuron = _Stiff(jnp.asarray(K))
    x0 = jnp.array([30.0, -20.0])
    inputs = jnp.linspace(-1.0, 1.0, 2 * T).reshape(T, 2)
    expected = _backward_euler(x0, inputs, 1.0)
    implicit = lt.ImplicitEuler()
    seq = lt.solve(neuron, x0, inputs, solver=lt.Sequential(), discretisation=implicit)
    par = lt.solve(
        neuron, x0, inputs, solver=lt.ParallelNewton(), discretisation=implicit
    )
    for sol in (seq, par):
        assert sol.result == lt.RESULTS.successful
        np.testing.assert_allclose(sol.states, expected, rtol=0, atol=1e-10)
    assert int(par.iterations) > T


def test_failed_root_find_is_reported_not_returned():
    """A per-step root find that cannot meet its tolerance within `max_steps`
    (two Newton steps from far away) leaves NaN, reported as
    `nonfinite_states`, by `Sequential` and named when raised; with enough steps
    the same problem succeeds."""
    neuron = _Stiff(jnp.asarray(K))
    x0 = jnp.array([3.0, -2.0])
    inputs = jnp.zeros((3, 2))
    starved = lt.ImplicitEuler(max_steps=2)
    sol = lt.solve(
        neuron, x0, inputs, solver=lt.Sequential(), discretisation=starved, throw=False
    )
    assert sol.result == lt.RESULTS.nonfinite_states
    assert not bool(jnp.all(jnp.isfinite(sol.states)))
    with pytest.raises(Exception, match="NaN"):
        lt.solve(neuron, x0, inputs, solver=lt.Sequential(), discretisation=starved)
    ok = lt.solve(
        neuron, x0, inputs, solver=lt.Sequential(), discretisation=lt.ImplicitEuler()
    )
    assert ok.result == lt.RESULTS.successful
    np.testing.assert_allclose(
        ok.states, _backward_euler(x0, inputs, 1.0), rtol=0, atol=1e-10
    )
