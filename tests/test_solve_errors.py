"""Hostile inputs and bad arguments: each error names the problem, in every
view."""

import functools
import re

import jax
import jax.numpy as jnp
import jax.random as jr
import jax.test_util
import numpy as np
import pytest

import lrc_toolkit as lt

from .helpers import (
    data,
    max_abs_diff,
    numpy_ltc_field,
    scaled,
)


# --------------------------------------------------------------- hostile inputs


@pytest.fixture
def lrc(getkey):
    return lt.LRC(4, 3, key=getkey())


@pytest.mark.parametrize(
    "solver",
    [lt.Sequential(), lt.ParallelNewton(), lt.ODE()],
    ids=["seq", "par", "ode"],
)
def test_shape_errors_name_the_problem(solver, lrc):
    solver = functools.partial(lt.solve, solver=solver)
    with pytest.raises(ValueError, match=r"3 channels.*input_size=3|has 2 channels"):
        solver(lrc, jnp.zeros(4), jnp.zeros((10, 2)))
    with pytest.raises(ValueError, match=r"must have shape \(T, 3\)"):
        solver(lrc, jnp.zeros(4), jnp.zeros(3))
    with pytest.raises(ValueError, match=r"`x0` must have shape \(4,\)"):
        solver(lrc, jnp.zeros(5), jnp.zeros((10, 3)))
    with pytest.raises(TypeError, match="AbstractLiquidNeuron"):
        solver(lambda x, u: x, jnp.zeros(4), jnp.zeros((10, 3)))


def test_ts_length_mismatch(lrc):
    with pytest.raises(ValueError, match="one time stamp per input step"):
        lt.solve(
            lrc,
            jnp.zeros(4),
            jnp.zeros((10, 3)),
            ts=jnp.arange(1.0, 9.0),
            solver=lt.ODE(),
        )
    with pytest.raises(ValueError, match="either `dt`.*or `ts`"):
        lt.solve(lrc, jnp.zeros(4), jnp.zeros((10, 3)), ts=jnp.arange(10.0), dt=1.0)


def test_dt_shape_mismatch(lrc):
    with pytest.raises(ValueError, match="one value per time step"):
        lt.solve_sequential(lrc, jnp.zeros(4), jnp.zeros((10, 3)), dt=jnp.ones(9))


@pytest.mark.parametrize(
    "solver",
    [lt.Sequential(), lt.ParallelNewton(), lt.ODE()],
    ids=["seq", "par", "ode"],
)
def test_nonfinite_inputs_raise(solver, lrc):
    inputs = jnp.zeros((10, 3)).at[4, 1].set(jnp.nan)
    with pytest.raises(Exception, match="NaN or infinite"):
        jax.jit(lambda u: lt.solve(lrc, jnp.zeros(4), u, solver=solver).states)(inputs)


@pytest.mark.parametrize(
    "case, message",
    [
        ("x0", "`x0` contains NaN or infinite values"),
        ("dt", "`dt` must be finite and positive"),
        ("ts", "`ts` contains NaN or infinite values"),
        ("inputs and dt", "`inputs` contains NaN"),  # the first failed check
    ],
)
def test_each_argument_check_names_its_argument(case, message, lrc):
    """The run-time argument checks are one `branched_error_if` (one host callback
    per compiled solve): each failing argument still gets its own message, inside
    `jit` too, and the first failed check is the one reported."""
    x0, inputs = jnp.zeros(4), jnp.zeros((10, 3))
    kwargs = {"dt": jnp.full(10, 0.1)}
    if case == "x0":
        x0 = x0.at[2].set(jnp.inf)
    if case == "dt":
        kwargs["dt"] = kwargs["dt"].at[3].set(-0.1)
    if case == "ts":
        kwargs = {"ts": jnp.arange(10.0).at[5].set(jnp.nan)}
    if case == "inputs and dt":
        inputs = inputs.at[1, 0].set(jnp.nan)
        kwargs["dt"] = kwargs["dt"].at[0].set(0.0)
    run = jax.jit(lambda a, u, kw: lt.solve(lrc, a, u, **kw).states)
    with pytest.raises(Exception, match=re.escape(message)):
        jax.block_until_ready(run(x0, inputs, kwargs))
    # The same compiled check passes valid arguments.
    valid = {"ts": jnp.arange(10.0)} if case == "ts" else {"dt": jnp.full(10, 0.1)}
    jax.block_until_ready(run(jnp.zeros(4), jnp.zeros((10, 3)), valid))


def test_nonconverged_parallel_solve(getkey):
    neuron = scaled(lt.LRC(8, 3, key=getkey()), 3.0)
    inputs, _ = data(getkey(), 1000, 3, jnp.float64)
    one = lt.ParallelNewton(max_iters=1)
    with pytest.raises(Exception, match="did not converge within `max_iters`"):
        jax.jit(lambda u: lt.solve(neuron, jnp.zeros(8), u, solver=one).states)(inputs)
    sol = lt.solve(neuron, jnp.zeros(8), inputs, solver=one, throw=False)
    assert not sol.converged
    assert sol.result == lt.RESULTS.newton_max_iters_reached


@pytest.mark.slow
def test_diverging_recurrence_reports_nonfinite(getkey):
    """LTC with explicit Euler at Δt = 1 blows up; Newton reports it."""
    neuron = lt.LTC(8, 3, key=getkey())
    inputs, _ = data(getkey(), 3000, 3, jnp.float64)
    dense = lt.ParallelNewton(method="dense")
    seq = lt.solve(
        neuron, jnp.zeros(8), inputs, solver=lt.Sequential(), dt=5.0, throw=False
    )
    assert not jnp.all(jnp.isfinite(seq.states))
    assert seq.result == lt.RESULTS.nonfinite_states
    sol = lt.solve(neuron, jnp.zeros(8), inputs, solver=dense, dt=5.0, throw=False)
    assert sol.result == lt.RESULTS.nonfinite_states
    stable = lt.solve(
        neuron,
        jnp.zeros(8),
        inputs,
        solver=dense,
        dt=5.0,
        discretisation=lt.SemiImplicitEuler(),
    )
    assert jnp.all(jnp.isfinite(stable.states))
    # ... and it is the fused step, x <- (x + dt b) / (1 - dt A), with A and b from
    # the numpy transcription of the LTC equations, in a plain loop.
    x, expected = np.zeros(8), []
    for u in np.asarray(inputs):
        _, A, b = numpy_ltc_field(neuron, x, u)
        x = (x + 5.0 * b) / (1 - 5.0 * A)
        expected.append(x)
    assert max_abs_diff(stable.states, jnp.asarray(np.stack(expected))) < 1e-8


def test_newton_method_requires_diagonal(getkey):
    with pytest.raises(ValueError, match="method='dense'"):
        lt.solve(
            lt.DenseLRC(4, 3, key=getkey()),
            jnp.zeros(4),
            jnp.zeros((5, 3)),
            solver=lt.ParallelNewton(method="newton"),
        )


def test_bad_config_values(lrc):
    with pytest.raises(ValueError, match="elastance"):
        lt.LRC(4, 3, elastance="nope", key=jr.key(0))
    with pytest.raises(ValueError, match="max_iters"):
        lt.ParallelNewton(max_iters=0)
    with pytest.raises((ValueError, TypeError), match="method"):
        lt.ParallelNewton(method="magic")
    with pytest.raises(ValueError, match="init"):
        lt.solve(
            lrc,
            jnp.zeros(4),
            jnp.zeros((5, 3)),
            solver=lt.ParallelNewton(),
            init=jnp.zeros((4, 4)),
        )
    with pytest.raises((ValueError, TypeError), match="interpolation"):
        lt.ODE(interpolation="x")
    with pytest.raises(TypeError, match="discretisation"):
        lt.solve(
            lrc,
            jnp.zeros(4),
            jnp.zeros((5, 3)),
            solver=lt.Sequential(),
            discretisation="euler",
        )
    with pytest.raises(TypeError, match="solver"):
        lt.solve(lrc, jnp.zeros(4), jnp.zeros((5, 3)), solver="parallel")


def test_safeguard_arguments_validated(lrc):
    with pytest.raises((ValueError, TypeError), match="fallback"):
        lt.ParallelNewton(fallback="pray")
    with pytest.raises(TypeError, match="fallback"):
        lt.ParallelNewton(fallback=lt.ParallelNewton())
    with pytest.raises(ValueError, match="damping"):
        lt.ParallelNewton(damping=-1.0)
