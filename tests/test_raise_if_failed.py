"""Failures as data: `Solution.raise_if_failed` raises a `SolveError` carrying the
`RESULTS` member (outside `jit`), or Equinox's runtime error from which
`SolveError.from_exception` reads the member back (inside it); the model's blocks
use it."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import pytest

import lrc_toolkit as lt
from lrc_toolkit.models import LiquidBlock


PREFIX = "layer 3: "


@pytest.fixture
def lrc():
    return lt.LRC(3, 2, key=jr.key(0))


def _solve(neuron, dt, throw=False):
    # At dt = 100 explicit Euler amplifies LRC's damped components.
    return lt.solve(neuron, jnp.zeros(3), jnp.ones((5, 2)), dt=dt, throw=throw)


def test_success_is_named_and_passes(lrc):
    sol = _solve(lrc, 1.0)
    assert sol.outcome == "successful"
    assert sol.raise_if_failed(PREFIX) is sol


def test_a_solution_prints_its_outcome_by_name(lrc):
    """`print(sol)` names the outcome (Equinox prints `successful` as `RESULTS<>`),
    the states' shape and dtype, and concrete statistics as numbers."""
    ok, bad = _solve(lrc, 1.0), _solve(lrc, 100.0)
    assert repr(ok).startswith("Solution(outcome='successful', states=f64[5,3]")
    assert "RESULTS<" not in repr(ok)
    assert f"max_factor={float(ok.stats['max_factor'])!r}" in repr(ok)
    assert repr(bad).startswith("Solution(outcome='unstable_step'")
    batch = jax.vmap(lambda dt: _solve(lrc, dt))(jnp.array([1.0, 100.0]))
    assert "outcome=['successful', 'unstable_step']" in repr(batch)


def test_outside_jit_a_solve_error_carries_the_member(lrc):
    sol = _solve(lrc, 100.0)
    assert sol.outcome == "unstable_step"
    with pytest.raises(lt.SolveError) as info:
        sol.raise_if_failed(PREFIX)
    error = info.value
    assert error.outcome == "unstable_step"
    assert bool(error.result == lt.RESULTS.unstable_step)
    assert error.message == PREFIX + lt.RESULTS[lt.RESULTS.unstable_step]
    assert str(error) == error.message
    with pytest.raises(lt.SolveError, match="^The step is unstable"):
        _solve(lrc, 100.0, throw=True)


def test_inside_jit_the_member_is_read_back(lrc):
    fn = eqx.filter_jit(lambda dt: _solve(lrc, dt).raise_if_failed(PREFIX).states)
    assert bool(jnp.all(jnp.isfinite(fn(1.0))))
    with pytest.raises(eqx.EquinoxRuntimeError) as info:
        jax.block_until_ready(fn(100.0))
    error = lt.SolveError.from_exception(info.value)
    assert error.outcome == "unstable_step"
    assert bool(error.result == lt.RESULTS.unstable_step)
    assert error.message == PREFIX + lt.RESULTS[lt.RESULTS.unstable_step]
    assert lt.SolveError.from_exception(error) is error
    assert lt.SolveError.from_exception(ValueError("unstable")) is None


def test_a_batch_names_each_solve_and_raises_the_first_failure(lrc):
    dts = jnp.array([1.0, 100.0])
    sols = jax.vmap(lambda dt: _solve(lrc, dt))(dts)
    assert list(sols.outcome) == ["successful", "unstable_step"]
    with pytest.raises(lt.SolveError, match="unstable"):
        sols.raise_if_failed()
    vmapped = eqx.filter_jit(jax.vmap(lambda dt: _solve(lrc, dt, throw=True).states))
    with pytest.raises(eqx.EquinoxRuntimeError) as info:
        jax.block_until_ready(vmapped(dts))
    assert lt.SolveError.from_exception(info.value).outcome == "unstable_step"


def test_a_failed_block_names_itself_and_carries_the_member():
    f64 = jnp.float64
    factory = lambda D, P, key: lt.LRC(D, P, dtype=f64, key=key)
    block = LiquidBlock(2, 3, factory, dtype=f64, key=jr.key(1))
    h = jnp.ones((5, 2))

    @eqx.filter_jit
    def run(dt):
        return block(h, lt.Sequential(), lt.Euler(), jnp.full((5,), dt, f64))[0]

    assert bool(jnp.all(jnp.isfinite(run(0.1))))
    with pytest.raises(eqx.EquinoxRuntimeError) as info:
        jax.block_until_ready(run(1e3))
    error = lt.SolveError.from_exception(info.value)
    assert error.message.startswith("LrcSSM block 0 (LRC): the liquid layer's solve")
    assert error.outcome in ("unstable_step", "nonfinite_states")
