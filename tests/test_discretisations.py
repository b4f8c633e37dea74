"""The discrete steps: the sequential solve is the Euler recurrence of a plain
loop, each discretisation converges at its order, and implicit steps report
convergence and failure on short stiff sequences."""

import diffrax
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.test_util
import numpy as np
import pytest

import lrc_toolkit as lt

from .helpers import (
    convergence_order,
    DENSE,
    DIAGONAL,
    max_abs_diff,
    python_loop,
)


# --------------------------------------------------------------------- the recurrence


@pytest.mark.parametrize("name", list(DIAGONAL) + ["dense_lrc"])
def test_sequential_is_the_euler_recurrence(name, getkey):
    make = DIAGONAL.get(name) or DENSE[name][0]
    neuron = make(6, 3, jnp.float64, getkey())
    inputs = jr.normal(getkey(), (60, 3))
    x0 = jr.normal(getkey(), (6,))
    dt = jr.uniform(getkey(), (60,), minval=0.2, maxval=1.0)
    expected = python_loop(neuron, x0, inputs, np.asarray(dt))
    sol = jax.jit(lambda n: lt.solve(n, x0, inputs, solver=lt.Sequential(), dt=dt))(
        neuron
    )
    assert max_abs_diff(sol.states, expected) < 1e-12
    assert sol.converged


def _order(discretisation, getkey):
    """Measured order of the recurrence's global error at t = 2 against Tsit5."""
    neuron = lt.LRC(8, 3, key=getkey())
    u = jr.normal(getkey(), (3,))
    x0 = jr.normal(getkey(), (8,))
    tight = diffrax.PIDController(rtol=1e-13, atol=1e-13)
    reference = lt.solve(
        neuron,
        x0,
        u[None],
        dt=2.0,
        solver=lt.ODE(diffrax.Tsit5(), stepsize_controller=tight),
    ).states[-1]

    def final_state(h):
        inputs = jnp.tile(u, (int(round(2.0 / h)), 1))
        solver = lt.Sequential()
        return lt.solve(
            neuron, x0, inputs, solver=solver, dt=h, discretisation=discretisation
        ).states[-1]

    return convergence_order(
        final_state, reference, np.array([0.2, 0.1, 0.05, 0.025, 0.0125])
    )


def test_euler_converges_at_order_one(getkey):
    assert 0.9 <= _order(lt.Euler(), getkey) <= 1.1


@pytest.mark.slow
def test_heun_converges_at_order_two(getkey):
    assert 1.85 <= _order(lt.DiffraxStep(diffrax.Heun()), getkey) <= 2.15
