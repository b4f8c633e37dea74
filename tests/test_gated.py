"""Diagonal gated cells (GRU, MGU, LSTM), and the three views agreeing for every
built-in neuron."""

import math
import warnings

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lrc_toolkit as lt

from .helpers import max_abs_diff, python_loop, slow_after_first


D, P, T = 3, 2, 12

# name -> (constructor(key, dtype), method, dt). The LRC options not listed here
# (biophysical init, input elastance) are checked parallel-vs-sequential in
# test_newton.py.
BUILTINS = {
    "lrc": (lambda k, d: lt.LRC(D, P, dtype=d, key=k), None, 1.0),
    "lrc_symmetric": (
        lambda k, d: lt.LRC(D, P, elastance="symmetric", dtype=d, key=k),
        None,
        1.0,
    ),
    "stc": (lambda k, d: lt.STC(D, P, dtype=d, key=k), None, 1.0),
    "lrc_A(u)b(x,u)": (
        lambda k, d: lt.LRC(
            D, P, elastance="none", state_dependence="update", dtype=d, key=k
        ),
        None,
        1.0,
    ),
    "lrc_A(u)b(u)": (
        lambda k, d: lt.LRC(
            D, P, elastance="none", state_dependence="none", dtype=d, key=k
        ),
        None,
        1.0,
    ),
    "gru": (lambda k, d: lt.GRUNeuron(D, P, dtype=d, key=k), None, 1.0),
    "mgu": (lambda k, d: lt.MGUNeuron(D, P, dtype=d, key=k), None, 1.0),
    "lstm": (lambda k, d: lt.LSTMNeuron(D, P, dtype=d, key=k), None, 1.0),
    "complex_lrc": (lambda k, d: lt.ComplexLRC(D, P, dtype=d, key=k), None, 1.0),
    "dense_lrc": (lambda k, d: lt.DenseLRC(D, P, dtype=d, key=k), "dense", 1.0),
    # LTC's conductances make explicit Euler at Δt = 1 unstable; use Δt = 0.1.
    "ltc": (lambda k, d: lt.LTC(D, P, dtype=d, key=k), "dense", 0.1),
}


def _x0(neuron, dtype, key):
    x0 = 0.5 * jax.random.normal(key, (D,), dtype)
    if isinstance(neuron, lt.ComplexLRC):
        x0 = jax.lax.complex(x0, 0.5 * x0[::-1])
    return x0


@pytest.mark.parametrize(
    "dtype", [pytest.param(jnp.float32, marks=pytest.mark.slow), jnp.float64]
)
@pytest.mark.parametrize("name", slow_after_first(BUILTINS))
def test_three_views_agree(name, dtype, getkey):
    """Parallel vs sequential vs Diffrax Euler vs a plain Python loop."""
    make, method, dt = BUILTINS[name]
    neuron = make(getkey(), dtype)
    x0 = _x0(neuron, dtype, getkey())
    inputs = jax.random.normal(getkey(), (T, P), dtype)
    reference = python_loop(neuron, x0, inputs, dt)
    seq = lt.solve(neuron, x0, inputs, solver=lt.Sequential(), dt=dt).states
    par = lt.solve(neuron, x0, inputs, solver=lt.ParallelNewton(method=method), dt=dt)
    with warnings.catch_warnings():
        # Diffrax warns that complex support is experimental; agreement is tested.
        warnings.filterwarnings("ignore", "Complex dtype support", UserWarning)
        # One Euler step per sample interval; forward only, so the cheapest adjoint.
        ode_solver = lt.ODE(
            diffrax.Euler(), max_steps=1, adjoint=diffrax.DirectAdjoint()
        )
        ode = lt.solve(neuron, x0, inputs, solver=ode_solver, dt=dt).states
    tol = 1e-5 if dtype == jnp.float32 else 1e-9
    assert par.converged
    assert seq.dtype == par.states.dtype == ode.dtype == x0.dtype
    assert max_abs_diff(seq, reference) <= tol
    assert max_abs_diff(par.states, seq) <= tol
    assert max_abs_diff(ode, seq) <= tol


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _np(neuron):
    return jax.tree.map(np.asarray, neuron)


def test_gru_is_the_standard_gru_update(getkey):
    """Euler at Δt = 1 is the GRU of Cho et al. with diagonal recurrent matrices."""
    neuron = lt.GRUNeuron(D, P, dtype=jnp.float64, key=getkey())
    p = _np(neuron)
    inputs = np.asarray(jax.random.normal(getkey(), (T, P), jnp.float64))
    h = np.asarray(jax.random.normal(getkey(), (D,), jnp.float64))
    U_z, U_r, U_h = np.diag(p.w_z), np.diag(p.w_r), np.diag(p.w_c)
    out, state = [], h
    for u in inputs:
        z = _sigmoid(p.W_z @ u + U_z @ state + p.b_z)
        r = _sigmoid(p.W_r @ u + U_r @ state + p.b_r)
        h_tilde = np.tanh(p.W_c @ u + U_h @ (r * state) + p.b_c)
        state = (1 - z) * state + z * h_tilde
        out.append(state)
    expected = np.stack(out)
    for solver in (lt.Sequential(), lt.ParallelNewton()):
        states = lt.solve(
            neuron, jnp.asarray(h), jnp.asarray(inputs), solver=solver
        ).states
        np.testing.assert_allclose(states, expected, rtol=1e-10, atol=1e-12)


def test_mgu_is_the_standard_mgu_update(getkey):
    """Euler at Δt = 1 is the MGU of Zhou et al. with diagonal recurrent matrices."""
    neuron = lt.MGUNeuron(D, P, dtype=jnp.float64, key=getkey())
    p = _np(neuron)
    inputs = np.asarray(jax.random.normal(getkey(), (T, P), jnp.float64))
    h = np.asarray(jax.random.normal(getkey(), (D,), jnp.float64))
    out, state = [], h
    for u in inputs:
        f = _sigmoid(p.W_f @ u + np.diag(p.w_f) @ state + p.b_f)
        h_tilde = np.tanh(p.W_c @ u + np.diag(p.w_c) @ (f * state) + p.b_c)
        state = (1 - f) * state + f * h_tilde
        out.append(state)
    states = lt.solve(
        neuron, jnp.asarray(h), jnp.asarray(inputs), solver=lt.ParallelNewton()
    ).states
    np.testing.assert_allclose(states, np.stack(out), rtol=1e-10, atol=1e-12)


def test_lstm_is_the_cell_state_update(getkey):
    """Euler at Δt = 1 is the LSTM cell update c_t = f c + i g, gates fed tanh(c)."""
    neuron = lt.LSTMNeuron(D, P, dtype=jnp.float64, key=getkey())
    p = _np(neuron)
    inputs = np.asarray(jax.random.normal(getkey(), (T, P), jnp.float64))
    c = np.asarray(jax.random.normal(getkey(), (D,), jnp.float64))
    out, state = [], c
    for u in inputs:
        h = np.tanh(state)
        i = _sigmoid(p.W_i @ u + p.w_i * h + p.b_i)
        f = _sigmoid(p.W_f @ u + p.w_f * h + p.b_f)
        g = np.tanh(p.W_g @ u + p.w_g * h + p.b_g)
        state = f * state + i * g
        out.append(state)
    states = lt.solve(
        neuron, jnp.asarray(c), jnp.asarray(inputs), solver=lt.ParallelNewton()
    ).states
    np.testing.assert_allclose(states, np.stack(out), rtol=1e-10, atol=1e-12)


GATED = {"gru": lt.GRUNeuron, "mgu": lt.MGUNeuron, "lstm": lt.LSTMNeuron}


@pytest.mark.parametrize("name", list(GATED))
def test_gated_structure_and_init(name, getkey):
    neuron = GATED[name](16, P, dtype=jnp.float32, key=getkey())
    assert neuron.jacobian_structure == "diagonal"
    lt.check_jacobian_structure(neuron)
    bound = 1 / math.sqrt(16)
    for leaf in jax.tree.leaves(neuron):
        assert leaf.dtype == jnp.float32
        assert float(jnp.max(jnp.abs(leaf))) <= bound
        # Spread over the range, not a constant.
        assert float(jnp.max(leaf) - jnp.min(leaf)) > bound / 2
    with pytest.raises(ValueError, match="`state_size` must be a positive integer"):
        GATED[name](0, P, key=getkey())


@pytest.mark.slow
@pytest.mark.parametrize("name", list(GATED))
def test_gated_gradients_match_autodiff_through_scan(name, getkey):
    neuron = GATED[name](D, P, dtype=jnp.float64, key=getkey())
    x0 = jax.random.normal(getkey(), (D,), jnp.float64)
    inputs = jax.random.normal(getkey(), (T, P), jnp.float64)
    weights = jax.random.normal(getkey(), (T, D), jnp.float64)

    def loss(solver, args):
        neuron, x0, inputs = args
        states = lt.solve(neuron, x0, inputs, solver=solver).states
        return jnp.sum(weights * jnp.sin(states))

    # Reverse-mode autodiff through lax.scan vs the parallel fixed-point adjoint.
    grads = [
        eqx.filter_grad(lambda a: loss(solver, a))((neuron, x0, inputs))
        for solver in (lt.Sequential(autodiff=True), lt.ParallelNewton())
    ]
    assert max_abs_diff(grads[0], grads[1]) <= 1e-9


# The published cells' equations as ODEs, transcribed with numpy from DESIGN.md
# ("Diagonal gated cells") and the neurons' docstrings: the affine form (A, b) of
# dx/dt = A x + b, with A, b written from the gates, not from the code's
# `affine_form`.


def _gru_affine(p, x, u):
    z = _sigmoid(p.W_z @ u + p.w_z * x + p.b_z)
    r = _sigmoid(p.W_r @ u + p.w_r * x + p.b_r)
    c = np.tanh(p.W_c @ u + p.w_c * (r * x) + p.b_c)
    return -z, z * c  # dx/dt = z (c - x)


def _mgu_affine(p, x, u):
    f = _sigmoid(p.W_f @ u + p.w_f * x + p.b_f)
    c = np.tanh(p.W_c @ u + p.w_c * (f * x) + p.b_c)
    return -f, f * c  # dx/dt = f (c - x)


def _lstm_affine(p, x, u):
    h = np.tanh(x)
    i = _sigmoid(p.W_i @ u + p.w_i * h + p.b_i)
    f = _sigmoid(p.W_f @ u + p.w_f * h + p.b_f)
    g = np.tanh(p.W_g @ u + p.w_g * h + p.b_g)
    return f - 1, i * g  # dx/dt = (f - 1) x + i g


PUBLISHED = {"gru": _gru_affine, "mgu": _mgu_affine, "lstm": _lstm_affine}


@pytest.mark.parametrize("name", list(GATED))
def test_gated_vector_field_is_the_published_ode(name, getkey):
    """`vector_field` (and `affine_form`) equal the numpy transcription of the
    published cell's ODE at random states and inputs, including large states where
    the gates saturate."""
    neuron = GATED[name](D, P, dtype=jnp.float64, key=getkey())
    p = _np(neuron)
    xs = 3 * np.asarray(jax.random.normal(getkey(), (6, D), jnp.float64))
    us = np.asarray(jax.random.normal(getkey(), (6, P), jnp.float64))
    for x, u in zip(xs, us):
        A, b = PUBLISHED[name](p, x, u)
        field = neuron.vector_field(jnp.asarray(x), jnp.asarray(u))
        np.testing.assert_allclose(field, A * x + b, rtol=1e-12, atol=1e-14)
        got_A, got_b = neuron.affine_form(jnp.asarray(x), neuron.drive(jnp.asarray(u)))
        np.testing.assert_allclose(got_A, A, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(got_b, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", list(GATED))
def test_gated_semi_implicit_step(name, getkey):
    """The semi-implicit step of the published ODE, (x + Δt b) / (1 - Δt A) with
    (A, b) from the numpy transcription, in both solvers, at Δt = 0.7."""
    neuron = GATED[name](D, P, dtype=jnp.float64, key=getkey())
    p = _np(neuron)
    x0 = jax.random.normal(getkey(), (D,), jnp.float64)
    inputs = jax.random.normal(getkey(), (T, P), jnp.float64)
    dt = 0.7
    x, expected = np.asarray(x0), []
    for u in np.asarray(inputs):
        A, b = PUBLISHED[name](p, x, u)
        x = (x + dt * b) / (1 - dt * A)
        expected.append(x)
    disc = lt.SemiImplicitEuler()
    for solver in (lt.Sequential(), lt.ParallelNewton()):
        states = lt.solve(
            neuron, x0, inputs, solver=solver, dt=dt, discretisation=disc
        ).states
        assert max_abs_diff(states, np.stack(expected)) <= 1e-10
