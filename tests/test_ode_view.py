"""The ODE view (`ODE`, through Diffrax): the Euler and Heun recurrences, irregular
times, input interpolations against hand-written paths, gradients, and
`compare_views`."""

import diffrax
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.test_util
import pytest

import lrc_toolkit as lt

from .helpers import (
    data,
    max_abs_diff,
)


# --------------------------------------------------------------------- ODE view


def test_ode_euler_reproduces_the_recurrence(getkey):
    neuron = lt.LRC(16, 4, dtype=jnp.float32, key=getkey())
    inputs, x0 = data(getkey(), 500, 4, jnp.float32)
    x0 = jnp.zeros(16, jnp.float32)
    ts = jnp.arange(1, 501, dtype=jnp.float32)
    ode = lt.solve(neuron, x0, inputs, ts=ts, solver=lt.ODE(diffrax.Euler()))
    seq = lt.solve(neuron, x0, inputs, solver=lt.Sequential())
    assert ode.states.dtype == jnp.float32
    assert max_abs_diff(ode.states, seq.states) <= 1e-6


@pytest.mark.slow
def test_ode_irregular_times_match_per_step_dt(getkey):
    neuron = lt.LRC(8, 3, key=getkey())
    inputs, _ = data(getkey(), 100, 3, jnp.float64)
    dt = jr.uniform(getkey(), (100,), minval=0.1, maxval=2.0)
    x0 = jnp.zeros(8)
    heun = lt.DiffraxStep(diffrax.Heun())
    ode = lt.solve(neuron, x0, inputs, dt=dt, solver=lt.ODE(diffrax.Heun()))
    seq = lt.solve(
        neuron, x0, inputs, solver=lt.Sequential(), dt=dt, discretisation=heun
    )
    assert max_abs_diff(ode.states, seq.states) <= 1e-12
    assert max_abs_diff(ode.ts, jnp.cumsum(dt)) <= 1e-12
    # With time stamps instead (x0 at ts[0] - (ts[1] - ts[0])): the same recurrence
    # with the first step repeating the second.
    ts = 3.0 + jnp.cumsum(dt)
    by_ts = lt.solve(neuron, x0, inputs, ts=ts, solver=lt.ODE(diffrax.Heun()))
    dt_ts = jnp.concatenate([dt[1:2], dt[1:]])
    seq_ts = lt.solve(
        neuron, x0, inputs, solver=lt.Sequential(), dt=dt_ts, discretisation=heun
    )
    assert max_abs_diff(by_ts.states, seq_ts.states) <= 1e-12


@pytest.mark.parametrize("interpolation", ["linear", "cubic"])
def test_ode_interpolations_with_constant_input(interpolation, getkey):
    """For a constant input every interpolation is the same path."""
    neuron = lt.LRC(6, 2, key=getkey())
    inputs = jnp.tile(jr.normal(getkey(), (2,)), (20, 1))
    ts = jnp.linspace(0.5, 10.0, 20)
    x0 = jnp.zeros(6)
    pid = diffrax.PIDController(rtol=1e-10, atol=1e-10)
    a = lt.solve(neuron, x0, inputs, ts=ts, solver=lt.ODE(stepsize_controller=pid))
    b = lt.solve(
        neuron,
        x0,
        inputs,
        ts=ts,
        solver=lt.ODE(stepsize_controller=pid, interpolation=interpolation),
    )
    assert max_abs_diff(a.states, b.states) < 1e-8


def _hand_written_path(interpolation, grid, inputs):
    """The input path through the knots (t_0, u_1), (t_1, u_1), (t_2, u_2), ...,
    written out by hand: piecewise linear, or the cubic Hermite spline whose slope at
    each knot is the backward difference (at t_0: the forward one), i.e. on
    [t_i, t_{i+1}] with h = t_{i+1} - t_i, secant S and left slope m,
    p(t_i + s) = y_i + m s + (S - m) (2 s^2 / h - s^3 / h^2)."""
    knots = jnp.concatenate([inputs[:1], inputs], axis=0)
    n = grid.shape[0] - 1  # intervals

    def u(t):
        i = jnp.clip(jnp.searchsorted(grid, t, side="right") - 1, 0, n - 1)
        h = grid[i + 1] - grid[i]
        s = jnp.clip(t - grid[i], 0, h)
        secant = (knots[i + 1] - knots[i]) / h
        if interpolation == "linear":
            return knots[i] + s * secant
        j = jnp.maximum(i, 1)
        backward = (knots[j] - knots[j - 1]) / (grid[j] - grid[j - 1])
        m = jnp.where(i == 0, secant, backward)
        return knots[i] + m * s + (secant - m) * (2 * s**2 / h - s**3 / h**2)

    return u


@pytest.mark.slow
@pytest.mark.parametrize("interpolation", ["linear", "cubic"])
def test_ode_interpolations_with_varying_input(interpolation, getkey):
    """A varying input at irregular times through each interpolation, against the
    ODE integrated along a hand-written path (shifting the path by one interval, or
    using the wrong slopes, changes the states at order one)."""
    T = 24
    neuron = lt.LRC(6, 2, key=getkey())
    inputs = 2 * jr.normal(getkey(), (T, 2))
    ts = 0.5 + jnp.cumsum(jr.uniform(getkey(), (T,), minval=0.3, maxval=1.2))
    x0 = 0.1 * jr.normal(getkey(), (6,))
    grid = jnp.concatenate([(2 * ts[0] - ts[1])[None], ts])
    path = _hand_written_path(interpolation, grid, inputs)
    term = diffrax.ODETerm(lambda t, x, args: neuron.vector_field(x, path(t)))

    def reference(controller, dt0):
        return diffrax.diffeqsolve(
            term,
            diffrax.Tsit5(),
            grid[0],
            grid[-1],
            dt0,
            x0,
            saveat=diffrax.SaveAt(ts=ts),
            stepsize_controller=controller,
            max_steps=100_000,
        ).ys

    # Default stepping: one Tsit5 step per sample interval, the same steps here.
    got = lt.solve(
        neuron, x0, inputs, ts=ts, solver=lt.ODE(interpolation=interpolation)
    )
    expected = reference(diffrax.StepTo(grid), None)
    assert got.converged
    assert max_abs_diff(got.states, expected) < 1e-12
    # Adaptive and tight: both equal the exact solution along the path.
    pid = diffrax.PIDController(rtol=1e-11, atol=1e-11)
    tight = lt.solve(
        neuron,
        x0,
        inputs,
        ts=ts,
        solver=lt.ODE(stepsize_controller=pid, interpolation=interpolation),
    )
    exact = reference(diffrax.PIDController(rtol=1e-11, atol=1e-11, jump_ts=grid), 0.01)
    assert max_abs_diff(tight.states, exact) < 1e-7
    # The interpolation matters here: a piecewise-constant input differs at order 1.
    held = lt.solve(neuron, x0, inputs, ts=ts, solver=lt.ODE(stepsize_controller=pid))
    assert max_abs_diff(held.states, exact) > 1e-3


def test_ode_gradients_finite_difference(getkey):
    neuron = lt.LRC(4, 2, key=getkey())
    inputs, _ = data(getkey(), 10, 2, jnp.float64)
    ts = jnp.arange(1.0, 11.0)

    def f(x0, inputs):
        solver = lt.ODE(interpolation="linear")
        return lt.solve(neuron, x0, inputs, ts=ts, solver=solver).states

    jax.test_util.check_grads(f, (jnp.zeros(4), inputs), order=1, modes=["rev"])


# --------------------------------------------------------------- compare_views


@pytest.mark.slow
def test_compare_views(getkey):
    neuron = lt.LRC(8, 3, key=getkey())
    inputs, _ = data(getkey(), 200, 3, jnp.float64)
    fine = lt.compare_views(neuron, None, inputs, dt=0.01, repeats=1)
    coarse = lt.compare_views(neuron, None, inputs, dt=0.1, repeats=1)
    assert fine.parallel_vs_sequential["max"] <= 1e-9
    # The Euler recurrence's distance to the ODE shrinks about linearly with dt.
    ratio = coarse.recurrence_vs_ode["max"] / fine.recurrence_vs_ode["max"]
    assert 5 < ratio < 20
    assert set(fine.seconds) == {"sequential", "parallel", "ode"}
    assert "Newton" in fine.summary()
    import matplotlib

    matplotlib.use("Agg")
    fig = lt.plot_comparison(fine)
    assert len(fig.axes) == 2
