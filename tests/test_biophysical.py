"""The biophysical built-ins (issue 20): block neurons of 2 or 4 variables, each
against a numpy transcription of its published equations, solved sequentially, by
block Newton and as an ODE by an adaptive Diffrax solver, with gradients against
autodiff through a plain `lax.scan`."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import lrc_toolkit as lt

from .helpers import max_abs_diff, slow_after_first
from .test_block import scan_states


N, P = 2, 3


def _np_fhn(n, x, current):
    v, w = x[:, 0], x[:, 1]
    # FitzHugh (1961): a = 0.7, b = 0.8, phi = 0.08
    return np.stack([v - v**3 / 3 - w + current, 0.08 * (v + 0.7 - 0.8 * w)], -1)


def _np_morris_lecar(n, x, current):
    V, w = x[:, 0], x[:, 1]
    # Rinzel & Ermentrout (1989), Hopf parameter set
    C, gL, gCa, gK, VL, VCa, VK = 20.0, 2.0, 4.4, 8.0, -60.0, 120.0, -84.0
    V1, V2, V3, V4, phi = -1.2, 18.0, 2.0, 30.0, 0.04
    m_inf = 0.5 * (1 + np.tanh((V - V1) / V2))
    w_inf = 0.5 * (1 + np.tanh((V - V3) / V4))
    tau_w = 1 / np.cosh((V - V3) / (2 * V4))
    dV = (current - gL * (V - VL) - gCa * m_inf * (V - VCa) - gK * w * (V - VK)) / C
    return np.stack([dV, phi * (w_inf - w) / tau_w], -1)


def _np_hodgkin_huxley(n, x, current):
    V, m, h, k = (x[:, i] for i in range(4))
    # Hodgkin & Huxley (1952), rest at -65 mV
    a_m = 0.1 * (V + 40) / (1 - np.exp(-(V + 40) / 10))
    b_m = 4 * np.exp(-(V + 65) / 18)
    a_h = 0.07 * np.exp(-(V + 65) / 20)
    b_h = 1 / (1 + np.exp(-(V + 35) / 10))
    a_n = 0.01 * (V + 55) / (1 - np.exp(-(V + 55) / 10))
    b_n = 0.125 * np.exp(-(V + 65) / 80)
    i_ion = 120 * m**3 * h * (V - 50) + 36 * k**4 * (V + 77) + 0.3 * (V + 54.387)
    return np.stack(
        [
            current - i_ion,
            a_m * (1 - m) - b_m * m,
            a_h * (1 - h) - b_h * h,
            a_n * (1 - k) - b_n * k,
        ],
        -1,
    )


def _np_theta(n, x, current):
    theta, a = x[:, 0], x[:, 1]
    # Ermentrout & Kopell (1986) theta neuron, adaptation tau_a = 20, g_a = 0.5
    dtheta = 1 - np.cos(theta) + (1 + np.cos(theta)) * (current - a)
    return np.stack([dtheta, (-a + 0.5 * (1 - np.cos(theta)) / 2) / 20], -1)


# name -> (constructor, numpy field, rest state of one neuron, state spread,
#          Δt for explicit Euler, time scale for the ODE view)
NEURONS = {
    "fhn": (
        lambda k: lt.FitzHughNagumo(2 * N, P, current=0.5, key=k),
        _np_fhn,
        [-1.0, -0.5],
        [1.5, 0.5],
        0.1,
    ),
    "morris_lecar": (
        lambda k: lt.MorrisLecar(2 * N, P, current=95.0, key=k),
        _np_morris_lecar,
        [-60.0, 0.01],
        [40.0, 0.3],
        0.5,
    ),
    "hodgkin_huxley": (
        lambda k: lt.HodgkinHuxley(4 * N, P, current=10.0, key=k),
        _np_hodgkin_huxley,
        [-65.0, 0.053, 0.596, 0.318],
        [40.0, 0.3, 0.3, 0.3],
        0.01,
    ),
    "adaptive_theta": (
        lambda k: lt.AdaptiveTheta(2 * N, P, current=0.3, key=k),
        _np_theta,
        [0.5, 0.0],
        [3.0, 0.2],
        0.2,
    ),
}


def _problem(name, key, T):
    make, _, rest, _, dt = NEURONS[name]
    neuron = make(key)
    x0 = jnp.tile(jnp.asarray(rest), N)
    inputs = jr.normal(jr.fold_in(key, 1), (T, P))
    return neuron, x0, inputs, dt


@pytest.mark.parametrize("name", list(NEURONS))
def test_vector_field_is_the_published_one(name, getkey):
    make, field, rest, spread, _ = NEURONS[name]
    neuron = make(getkey())
    k = neuron.block_size
    lt.check_jacobian_structure(neuron)
    for i in range(3):
        x = np.asarray(rest) + np.asarray(spread) * np.asarray(
            jr.normal(getkey(), (N, k))
        )
        if name == "hodgkin_huxley":
            x[:, 1:] = np.clip(x[:, 1:], 0, 1)
            if i == 0:  # next to the removable singularities of alpha_m, alpha_n
                x[:, 0] = [-40 + 0.005, -55 - 0.003]
        u = np.asarray(jr.normal(getkey(), (P,)))
        current = np.asarray(neuron.i_ext) + np.asarray(neuron.w_in) @ u
        want = field(neuron, x, current)
        got = neuron.vector_field(jnp.asarray(x.reshape(-1)), jnp.asarray(u))
        np.testing.assert_allclose(
            np.asarray(got), want.reshape(-1), rtol=1e-9, atol=1e-9
        )


@pytest.mark.parametrize("name", slow_after_first(NEURONS))
def test_block_newton_matches_sequential(name, getkey):
    """Default `ParallelNewton()` (block Newton, damped automatically where exact
    Newton overflows) equals the sequential solve to 1e-10 in float64."""
    neuron, x0, inputs, dt = _problem(name, getkey(), 120)
    assert lt.ParallelNewton().resolved_method(neuron) == "block"
    seq = lt.solve(neuron, x0, inputs, solver=lt.Sequential(), dt=dt)
    par = lt.solve(neuron, x0, inputs, solver=lt.ParallelNewton(atol=1e-12), dt=dt)
    assert par.converged
    assert max_abs_diff(par.states, seq.states) <= 1e-10


@pytest.mark.parametrize("name", slow_after_first(list(NEURONS)))
def test_block_newton_matches_sequential_float32(name, getkey):
    """In float32, default block Newton equals the float32 sequential solve to
    1e-5 of the states' scale (Morris-Lecar and Hodgkin-Huxley live in mV, up to
    ~65: measured 3e-5 and 5e-5 absolute, 6e-7 relative, the size of the float32
    sequential solve's own distance from float64's)."""
    neuron, x0, inputs, dt = _problem(name, getkey(), 120)
    to32 = lambda a: a.astype(jnp.float32) if eqx.is_inexact_array(a) else a
    neuron, x0, inputs = jax.tree.map(to32, (neuron, x0, inputs))
    seq = lt.solve(neuron, x0, inputs, solver=lt.Sequential(), dt=dt).states
    par = lt.solve(neuron, x0, inputs, solver=lt.ParallelNewton(), dt=dt)
    assert par.converged and par.states.dtype == jnp.float32
    scale = float(jnp.max(jnp.abs(seq)))
    assert max_abs_diff(par.states, seq) <= 1e-5 * max(scale, 1.0)


def test_hodgkin_huxley_implicit_euler_in_parallel(getkey):
    """HH is stiff: `ImplicitEuler` at 5x the explicit step, solved by block Newton
    on the whole trajectory, equals its sequential root finds. (Exact Newton
    overflows from the zero guess; the damped restart needs more than the default
    T iterations: 53 at T = 40 when measured.)"""
    neuron, x0, inputs, _ = _problem("hodgkin_huxley", getkey(), 40)
    disc = lt.ImplicitEuler()
    seq = lt.solve(
        neuron, x0, inputs, solver=lt.Sequential(), dt=0.05, discretisation=disc
    )
    solver = lt.ParallelNewton(atol=1e-12, max_iters=400)
    par = lt.solve(neuron, x0, inputs, solver=solver, dt=0.05, discretisation=disc)
    assert max_abs_diff(par.states, seq.states) <= 1e-10


@pytest.mark.parametrize("name", slow_after_first(NEURONS))
def test_gradients_match_autodiff_through_scan(name, getkey):
    neuron, x0, inputs, dt = _problem(name, getkey(), 30)
    weights = jnp.cos(jnp.arange(30 * x0.size, dtype=x0.dtype)).reshape(30, -1)

    def loss(n, x0, u):
        sol = lt.solve(n, x0, u, solver=lt.ParallelNewton(atol=1e-12), dt=dt)
        return jnp.sum(weights * sol.states)

    def reference(n, x0, u):
        return jnp.sum(weights * scan_states(n, x0, u, dt))

    got = eqx.filter_grad(loss)(neuron, x0, inputs)
    want = eqx.filter_grad(reference)(neuron, x0, inputs)
    scale = max(1.0, max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(want)))
    assert max_abs_diff(got, want) <= 1e-9 * scale
    got_u = jax.grad(lambda u: loss(neuron, x0, u))(inputs)
    want_u = jax.grad(lambda u: reference(neuron, x0, u))(inputs)
    assert max_abs_diff(got_u, want_u) <= 1e-9 * max(
        1.0, float(jnp.max(jnp.abs(want_u)))
    )


@pytest.mark.parametrize("name", slow_after_first(NEURONS))
def test_ode_view_agrees_with_sequential(name, getkey):
    """The ODE view, adaptive (Tsit5, or the implicit Kvaerno5 for the stiff HH),
    against the sequential Euler solve at a small step: first order in Δt."""
    neuron, x0, inputs, dt = _problem(name, getkey(), 60)
    dt = dt / 4
    solver = diffrax.Kvaerno5() if name == "hodgkin_huxley" else diffrax.Tsit5()
    pid = diffrax.PIDController(rtol=1e-8, atol=1e-8)
    ode = lt.solve(
        neuron, x0, inputs, dt=dt, solver=lt.ODE(solver, stepsize_controller=pid)
    )
    errors = []
    for h in (1, 2):  # Euler with 1 and 2 substeps per sample
        seq = lt.solve(
            neuron, x0, jnp.repeat(inputs, h, axis=0), dt=dt / h, solver=lt.Sequential()
        )
        errors.append(max_abs_diff(ode.states, seq.states[h - 1 :: h]))
    scale = float(jnp.max(jnp.abs(ode.states)))
    assert errors[0] <= 0.05 * scale
    assert 1.6 <= errors[0] / errors[1] <= 2.5  # first order


@pytest.mark.parametrize(
    "cls, k",
    [
        (lt.FitzHughNagumo, 2),
        (lt.MorrisLecar, 2),
        (lt.HodgkinHuxley, 4),
        (lt.AdaptiveTheta, 2),
    ],
)
def test_sizes_checked(cls, k):
    with pytest.raises(ValueError, match=f"multiple of {k}"):
        cls(k + 1, 2, key=jr.key(0))
    with pytest.raises(ValueError, match="`input_size` must be a positive"):
        cls(k, 0, key=jr.key(0))
    assert cls(3 * k, 2, key=jr.key(0)).block_size == k


def test_lrcssm_uses_a_block_neuron(getkey):
    """`LrcSSM` with FitzHugh–Nagumo layers (a neuron factory): parallel (block
    Newton) and sequential logits agree."""
    from lrc_toolkit.models import LrcSSM

    def fhn(D, P, *, key):
        return lt.FitzHughNagumo(D, P, current=0.5, dtype=jnp.float64, key=key)

    x = jr.normal(getkey(), (20, 3))
    key = getkey()
    logits = [
        LrcSSM(
            3,
            2,
            hidden_size=4,
            state_size=4,
            num_blocks=1,
            neuron=fhn,
            solver=solver,
            dt=0.1,
            dtype=jnp.float64,
            key=key,
        )(x)
        for solver in (lt.ParallelNewton(), lt.Sequential())
    ]
    assert max_abs_diff(logits[0], logits[1]) <= 1e-9
