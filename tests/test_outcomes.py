"""Honest outcomes in every view (issue 11): an unstable explicit step and a vector
field that returns NaN each give one named, non-successful `RESULTS` member in every
solver, raise with the cause and the fixes, and are reported by `compare_views`."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import lrc_toolkit as lt

from .helpers import (
    FastTau,
    max_abs_diff,
    NaNField,
    numpy_fast_tau_implicit,
    slow_unless,
)


SOLVERS = {
    "sequential": lt.Sequential(),
    "parallel": lt.ParallelNewton(),
    "ode_euler": lt.ODE(diffrax.Euler()),
    "ode_tsit5": lt.ODE(),  # Tsit5, one fixed step per sample
}
T = 60


def fast_tau():
    """The fast-tau neuron of issue 11 on one input sequence, Δt = 1: τ(u) falls
    well below Δt/2 on part of the sequence (down to ~0.14), but the explicit states
    stay finite (|x| ~ 15 with Euler, ~ 50 with Tsit5): bounded and wrong."""
    neuron = FastTau(4, 2, scale=0.7, key=jr.key(1))
    inputs = jr.normal(jr.key(11), (T, 2))
    return neuron, jnp.zeros(4), inputs


def test_fast_tau_construction():
    """The fault is the one intended: some τ < Δt/2, the exact (implicit) dynamics
    are tame, the explicit states finite but far from them."""
    neuron, x0, inputs = fast_tau()
    tau = jax.vmap(neuron.tau)(inputs)
    assert jnp.min(tau) < 0.5
    assert jnp.max(tau) > 1.0
    exact = numpy_fast_tau_implicit(neuron, x0, inputs)
    assert np.max(np.abs(exact)) < 2
    euler = lt.solve(neuron, x0, inputs, solver=lt.Sequential(), throw=False)
    assert jnp.all(jnp.isfinite(euler.states))
    assert max_abs_diff(euler.states, jnp.asarray(exact)) > 5


@pytest.mark.parametrize("name", list(SOLVERS))
def test_unstable_explicit_step_in_every_view(name):
    neuron, x0, inputs = fast_tau()
    solver = SOLVERS[name]
    sol = eqx.filter_jit(lambda n, u: lt.solve(n, x0, u, solver=solver, throw=False))(
        neuron, inputs
    )
    assert jnp.all(jnp.isfinite(sol.states))  # finite, so not `nonfinite_states`
    assert sol.result == lt.RESULTS.unstable_step
    assert not sol.converged
    assert bool(sol.stats["unstable"])
    # The largest step factor: for Euler 1 + Δt ∂f/∂x = 1 - (1 + sech²(x)/2)/τ
    # along the trajectory (as written out here), for Tsit5 at least as large.
    prev = np.concatenate([np.zeros((1, 4)), np.asarray(sol.states[:-1])])
    tau = np.asarray(jax.vmap(neuron.tau)(inputs))
    euler_factor = 1 - (1 + 0.5 / np.cosh(prev) ** 2) / tau
    if name != "ode_tsit5":
        assert np.isclose(float(sol.stats["max_factor"]), np.max(np.abs(euler_factor)))
    assert float(sol.stats["max_factor"]) > 2
    with pytest.raises(Exception, match="step is unstable") as info:
        lt.solve(neuron, x0, inputs, solver=solver).states.block_until_ready()
    assert lt.SolveError.from_exception(info.value).outcome == "unstable_step"
    # the message names the fixes
    for fix in ("smaller `dt`", "SemiImplicitEuler", "ImplicitEuler"):
        assert fix in str(info.value)


@pytest.mark.parametrize("name", ["sequential", "parallel"])
def test_implicit_step_is_not_flagged(name):
    """The same neuron with `ImplicitEuler`: successful, step factors below 1."""
    neuron, x0, inputs = fast_tau()
    sol = lt.solve(
        neuron, x0, inputs, solver=SOLVERS[name], discretisation=lt.ImplicitEuler()
    )
    assert sol.result == lt.RESULTS.successful
    assert not bool(sol.stats["unstable"])
    assert 0 < float(sol.stats["max_factor"]) < 1
    exact = numpy_fast_tau_implicit(neuron, x0, inputs)
    assert max_abs_diff(sol.states, jnp.asarray(exact)) < 1e-10


def test_genuinely_expanding_dynamics_are_not_flagged(getkey):
    """|∂Φ/∂x| > 1 where the ODE itself expands (∂f/∂x > 0) is not an unstable
    step: dx/dt = 0.05 x + u grows, and Euler follows it."""

    class Growing(lt.AbstractLiquidNeuron):
        state_size: int = 3
        input_size: int = 3
        jacobian_structure = "diagonal"

        def vector_field(self, x, u):
            return 0.05 * x + u

    inputs = jr.normal(getkey(), (40, 3))
    for solver in (lt.Sequential(), lt.ParallelNewton(), lt.ODE(diffrax.Euler())):
        sol = lt.solve(Growing(), jnp.ones(3), inputs, solver=solver)
        assert sol.result == lt.RESULTS.successful
        assert np.isclose(float(sol.stats["max_factor"]), 1.05)


def nan_field():
    inputs = jr.normal(jr.key(3), (30, 2))
    assert jnp.any(inputs[:, 0] > 1)  # the field returns NaN at some steps
    return NaNField(3, 2), jnp.zeros(3), inputs


@pytest.mark.parametrize(
    "name", slow_unless(SOLVERS, fast=("sequential", "parallel", "ode_euler"))
)
def test_nan_vector_field_in_every_view(name):
    neuron, x0, inputs = nan_field()
    solver = SOLVERS[name]
    sol = lt.solve(neuron, x0, inputs, solver=solver, throw=False)
    assert sol.result == lt.RESULTS.nonfinite_states
    assert not sol.converged
    with pytest.raises(Exception, match="became NaN, infinite or overflowed"):
        lt.solve(neuron, x0, inputs, solver=solver).states.block_until_ready()
    # also under jit and vmap, with a clean sequence in the batch
    batch = jnp.stack([inputs, jnp.clip(inputs, -1, 0.5)])
    sols = jax.jit(
        jax.vmap(lambda u: lt.solve(neuron, x0, u, solver=solver, throw=False))
    )(batch)
    expected = [lt.RESULTS.nonfinite_states, lt.RESULTS.successful]
    assert list(np.asarray(sols.result._value)) == [r._value for r in expected]


@pytest.mark.parametrize(
    "discretisation",
    [lt.Euler(), lt.DiffraxStep(diffrax.Heun()), lt.ImplicitEuler()],
    ids=["euler", "heun", "implicit"],
)
def test_nan_vector_field_any_discretisation(discretisation):
    neuron, x0, inputs = nan_field()
    for solver in (lt.Sequential(), lt.ParallelNewton()):
        sol = lt.solve(
            neuron,
            x0,
            inputs,
            solver=solver,
            discretisation=discretisation,
            throw=False,
        )
        assert sol.result == lt.RESULTS.nonfinite_states


@pytest.mark.parametrize(
    "solver", [lt.Sequential(), lt.ODE(diffrax.Euler())], ids=["sequential", "ode"]
)
def test_max_factor_of_a_nonfinite_solve_is_over_its_finite_steps(solver):
    """Both views that check after the scan read the same rule: the steps after
    the states turn NaN have NaN factors, which `max_factor` skips, so it is the
    largest |1 + dt df/dx| of the finite steps (a plain loop), not NaN."""

    class Cubic(lt.AbstractLiquidNeuron):
        state_size: int = 2
        input_size: int = 1
        jacobian_structure = "diagonal"

        def vector_field(self, x, u):
            return -(x**3) / 3 + u[0] + jnp.where(u[0] > 2, jnp.nan, 0.0)

    inputs = jnp.array([[0.5], [1.0], [-0.5], [2.5], [0.1], [0.2]])
    x0 = jnp.array([0.3, -1.2])
    sol = lt.solve(Cubic(), x0, inputs, dt=0.5, solver=solver, throw=False)
    assert sol.result == lt.RESULTS.nonfinite_states
    x, factors = np.asarray(x0), []
    for u in np.asarray(inputs[:, 0]):
        factors.append(np.abs(1 - 0.5 * x**2))
        x = x + 0.5 * (-(x**3) / 3 + u + (np.nan if u > 2 else 0.0))
    expected = np.nanmax(factors)
    assert np.isfinite(expected) and np.sum(np.isnan(factors)) == 4
    assert np.isclose(float(sol.stats["max_factor"]), expected, rtol=1e-12)


def test_overflow_is_nonfinite_in_every_view(getkey):
    """States past sqrt(max float) count as overflow (products of states would be
    inf): dx/dt = 3x + 1e150 in float64."""

    class Exploding(lt.AbstractLiquidNeuron):
        state_size: int = 2
        input_size: int = 1
        jacobian_structure = "diagonal"

        def vector_field(self, x, u):
            return 3 * x + 1e150 * u[0]

    inputs = jnp.ones((20, 1))
    for solver in SOLVERS.values():
        sol = lt.solve(Exploding(), jnp.zeros(2), inputs, solver=solver, throw=False)
        assert sol.result == lt.RESULTS.nonfinite_states


def test_compare_views_reports_outcomes_and_factor():
    neuron, x0, inputs = fast_tau()
    cmp = lt.compare_views(neuron, x0, inputs, repeats=1)
    unstable = lt.RESULTS[lt.RESULTS.unstable_step]
    assert cmp.outcomes["sequential"] == unstable
    assert cmp.outcomes["parallel"] == unstable
    # the reference ODE view is adaptive (Tsit5, PID): it resolves the fast τ
    assert cmp.outcomes["ode"] == ""
    assert cmp.ode.result == lt.RESULTS.successful
    assert cmp.max_factor > 2
    assert "check stability" in cmp.summary()
    assert "sequential failed: The step is unstable" in cmp.summary()
    # The adaptive ODE agrees with backward Euler at a fine step far better than
    # the explicit recurrence does.
    exact = numpy_fast_tau_implicit(neuron, x0, inputs)
    assert max_abs_diff(cmp.ode.states, jnp.asarray(exact)) < 1
    assert cmp.recurrence_vs_ode["max"] > 5


@pytest.mark.slow
def test_compare_views_healthy_neuron(getkey):
    neuron = lt.LRC(6, 3, key=getkey())
    inputs = jr.normal(getkey(), (100, 3))
    cmp = lt.compare_views(neuron, None, inputs, repeats=1)
    assert cmp.outcomes == {"sequential": "", "parallel": "", "ode": ""}
    # The reference-initialised LRC contracts: every factor in (0, 1) (see also
    # test_neurons.py::test_transition_factors_in_unit_interval).
    assert 0 < cmp.max_factor < 1
    assert "check stability" not in cmp.summary()
    assert "failed" not in cmp.summary()
    factors = lt.transition_factors(neuron, jnp.zeros(6), inputs, cmp.sequential.states)
    assert np.isclose(cmp.max_factor, float(jnp.max(jnp.abs(factors))), rtol=1e-6)


def test_same_fault_same_outcome_with_fallback():
    """`ParallelNewton(fallback=Sequential())` reruns a failed sequence; an unstable
    step stays an unstable step (the fallback cannot make it right)."""
    neuron, x0, inputs = fast_tau()
    sol = lt.solve(
        neuron,
        x0,
        inputs,
        solver=lt.ParallelNewton(fallback=lt.Sequential()),
        throw=False,
    )
    assert sol.result == lt.RESULTS.unstable_step
    seq = lt.solve(neuron, x0, inputs, solver=lt.Sequential(), throw=False)
    assert max_abs_diff(sol.states, seq.states) < 1e-9
