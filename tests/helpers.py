import dataclasses
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jaxtyping import Array, Float

import lrc_toolkit as lt
from lrc_toolkit._neurons._init import inv_softplus


def slow_after_first(values, *, unpack=False):
    """Parametrisation values whose first stays in the fast tier and the rest are
    marked `slow` (`pytest -m "not slow"` runs one case, `.ci/run` all). With
    `unpack`, each value is the tuple of several argument names' values."""
    values = list(values)
    slow = pytest.mark.slow
    return values[:1] + [
        pytest.param(*v, marks=slow) if unpack else pytest.param(v, marks=slow)
        for v in values[1:]
    ]


def slow_unless(values, fast):
    """Parametrisation values of which those in `fast` stay in the fast tier and the
    rest are marked `slow`: the fast tier keeps one case of each mechanism (e.g. one
    neuron of a family that shares its code), `.ci/run` runs all."""
    values, slow = list(values), pytest.mark.slow
    assert all(v in values for v in fast), [v for v in fast if v not in values]
    return [v if v in fast else pytest.param(v, marks=slow) for v in values]


def tree_allclose(x, y, *, rtol=1e-5, atol=1e-8):
    """Whether two PyTrees have the same structure and allclose array leaves."""
    return eqx.tree_equal(x, y, typematch=True, rtol=rtol, atol=atol)


def max_abs_diff(x, y) -> float:
    leaves = jax.tree.leaves(jax.tree.map(lambda a, b: jnp.max(jnp.abs(a - b)), x, y))
    return float(max(leaves)) if leaves else 0.0


def python_recurrence(a, b, reverse=False):
    """x_t = a_t x_{t-1} + b_t (or x_{t+1} if reverse), x = 0 outside: a plain loop,
    for diagonal `(T, D)`, dense `(T, D, D)` and block `(T, N, k, k)` transitions."""
    a, b = np.asarray(a), np.asarray(b)
    x, out = np.zeros_like(b[0]), np.zeros_like(b)
    for t in reversed(range(b.shape[0])) if reverse else range(b.shape[0]):
        if a.ndim == 4:  # N blocks of k x k, block n on entries [n k, (n + 1) k)
            x = np.einsum("nrc,nc->nr", a[t], x.reshape(a.shape[1], -1)).reshape(-1)
        else:
            x = a[t] @ x if a.ndim == 3 else a[t] * x
        x = x + b[t]
        out[t] = x
    return out


def python_loop(neuron, x0, inputs, dt=1.0):
    """The explicit-Euler recurrence as a plain Python loop over `vector_field`: the
    independent reference for every solver."""
    f = eqx.filter_jit(lambda x, u: neuron.vector_field(x, u))
    dts = np.broadcast_to(np.asarray(dt), (inputs.shape[0],))
    x, out = x0, []
    for u, h in zip(inputs, dts):
        x = x + jnp.asarray(h, x.dtype) * f(x, u)
        out.append(x)
    return jnp.stack(out)


# ------------------------------------------- neurons, data and harnesses of the core


DIAGONAL = {
    "lrc": lambda D, P, dtype, key: lt.LRC(D, P, dtype=dtype, key=key),
    "lrc_symmetric": lambda D, P, dtype, key: lt.LRC(
        D, P, elastance="symmetric", dtype=dtype, key=key
    ),
    "lrc_input_elastance": lambda D, P, dtype, key: lt.LRC(
        D, P, input_elastance=True, dtype=dtype, key=key
    ),
    "lrc_biophysical": lambda D, P, dtype, key: lt.LRC(
        D, P, init="biophysical", dtype=dtype, key=key
    ),
    "stc": lambda D, P, dtype, key: lt.STC(D, P, dtype=dtype, key=key),
}
# Dense neurons with the discretisation each is stable with at dt = 1.
DENSE = {
    "dense_lrc": (
        lambda D, P, dtype, key: lt.DenseLRC(D, P, dtype=dtype, key=key),
        lt.Euler(),
    ),
    "ltc": (
        lambda D, P, dtype, key: lt.LTC(D, P, dtype=dtype, key=key),
        lt.SemiImplicitEuler(),
    ),
}
# Parallel-vs-sequential agreement expected at each dtype.
TOL = {jnp.float32: 1e-5, jnp.float64: 1e-9}


def data(key, T, P, dtype):
    """`(inputs (T, P), a small vector (P,))`, standard normal / 0.1 x normal."""
    ku, kx = jr.split(key)
    return jr.normal(ku, (T, P), dtype), 0.1 * jr.normal(kx, (P,), dtype)


def weighted_loss(solver, neuron, x0, inputs, dt, **kwargs):
    """A scalar loss that weighs every state differently (a plain sum would hide
    transposed or shifted gradients): sum_i w_i sin(x_i), w from -1 to 1."""
    states = lt.solve(neuron, x0, inputs, solver=solver, dt=dt, **kwargs).states
    weights = jnp.linspace(-1.0, 1.0, states.size).reshape(states.shape)
    return jnp.sum(weights * jnp.sin(states))


def assert_gradients_close(expected, got, rtol=1e-6):
    """Every leaf within `rtol` of the expected leaf's largest entry."""
    for e, g in zip(jax.tree.leaves(expected), jax.tree.leaves(got), strict=True):
        assert jnp.all(jnp.abs(e - g) <= rtol * jnp.max(jnp.abs(e)) + 1e-12)


def convergence_order(final_state, reference, hs) -> float:
    """The measured order of a method: the slope of log(max |error|) against
    log(h), `final_state(h)` the method's state at the end time with step `h`."""
    errors = [float(np.max(np.abs(np.asarray(final_state(h)) - reference))) for h in hs]
    return float(np.polyfit(np.log(hs), np.log(errors), 1)[0])


def scaled(neuron, factor):
    """Every parameter multiplied by `factor`; positive parameters stored through a
    softplus (fields ending in `_raw`) have their positive value multiplied."""
    names, values = [], []
    for field in dataclasses.fields(neuron):
        value = getattr(neuron, field.name)
        if eqx.is_inexact_array(value):
            names.append(field.name)
            if field.name.endswith("_raw"):
                value = inv_softplus(factor * jax.nn.softplus(value))
            else:
                value = factor * value
            values.append(value)
    return eqx.tree_at(lambda n: [getattr(n, k) for k in names], neuron, values)


# ------------------------------------------------- the published equations in numpy


def _sigmoid(v):
    return 1 / (1 + np.exp(-v))


def numpy_lrc_field(neuron, x, u):
    """The diagonal LRC vector field transcribed from DESIGN.md ("The mathematics in
    one page") and the `LRC` docstring, in numpy, independently of `affine_form`:
    elastance asymmetric $\\sigma(\\kappa x + \\beta)$, symmetric
    $\\sigma(\\cdot + |s|) - \\sigma(\\cdot - |s|)$ or none ($1$); with the input
    elastance $K_u u$ added to the pre-activation. Returns `(dx/dt, A, b)` with
    $A = -\\sigma(f)\\epsilon$, $b = e_\\text{leak}\\tanh(z)\\epsilon$ (no rho clamp:
    the clamp is checked separately)."""
    p = jax.tree.map(np.asarray, neuron)
    x, u = np.asarray(x), np.asarray(u)
    s_u = _sigmoid(p.sigma_u * (u - p.mu_u))
    s_x = _sigmoid(p.sigma_x * (x - p.mu_x))
    f = p.g_leak + p.W_u @ s_u + p.w_x * s_x
    z = p.g_leak + p.H_u @ s_u + p.h_x * s_x
    if neuron.elastance == "none":
        eps = np.ones_like(x)
    else:
        pre = p.kappa * x + p.beta
        if p.K_u is not None:
            pre = pre + p.K_u @ u
        if neuron.elastance == "asymmetric":
            eps = _sigmoid(pre)
        else:
            s = np.abs(p.half_width)
            eps = _sigmoid(pre + s) - _sigmoid(pre - s)
    A = -_sigmoid(f) * eps
    b = p.e_leak * np.tanh(z) * eps
    return eps * (-_sigmoid(f) * x + p.e_leak * np.tanh(z)), A, b


def _softplus(v):
    return np.logaddexp(0, v)


def numpy_ltc_field(neuron, v, u):
    """The LTC vector field transcribed from the `LTC` docstring (Hasani et al.
    2021) in numpy, with the positive parameters stored through a softplus:

    $c_m \\dot v_i = g_i(v_{\\text{leak},i} - v_i)
    + \\sum_j w_{ji}\\sigma(\\sigma_{ji}(v_j - \\mu_{ji}))(E_{ji} - v_i)
    + \\sum_k w^s_{ki}\\sigma(\\sigma^s_{ki}(u_k - \\mu^s_{ki}))(E^s_{ki} - v_i)$.

    Returns `(dv/dt, A, b)` with $\\dot v = A v + b$ (the split the fused step
    uses: everything multiplying $v_i$ in $A$)."""
    p = jax.tree.map(np.asarray, neuron)
    v, u = np.asarray(v), np.asarray(u)
    cm = _softplus(p.cm_raw)
    g = _softplus(p.g_leak_raw)
    # syn[j, i]: the synapse from neuron j (input k) onto neuron i
    syn = _softplus(p.w_raw) * _sigmoid(p.sigma * (v[:, None] - p.mu))
    sens = _softplus(p.sensory_w_raw) * _sigmoid(
        p.sensory_sigma * (u[:, None] - p.sensory_mu)
    )
    dv = (
        g * (p.v_leak - v)
        + np.sum(syn * (p.erev - v[None, :]), axis=0)
        + np.sum(sens * (p.sensory_erev - v[None, :]), axis=0)
    )
    A = -(g + syn.sum(0) + sens.sum(0))
    b = g * p.v_leak + (syn * p.erev).sum(0) + (sens * p.sensory_erev).sum(0)
    return dv / cm, A / cm, b / cm


# ------------------------------------------------------------- test-only neurons


class FastTau(lt.AbstractLiquidNeuron):
    r"""A liquid neuron with an input-dependent time constant that gets short (issue
    11): $\frac{dx}{dt} = (\tanh(W_2 u) - x - \frac12\tanh(x)) / \tau(u)$,
    $\tau(u) = \mathrm{softplus}(W u + 1)$. Its derivative
    $\partial f_i/\partial x_i = -(1 + \frac12\mathrm{sech}^2 x_i)/\tau_i(u)$ lies
    in $[-1.5/\tau, -1/\tau]$: the ODE is stable and the backward-Euler residual
    strictly monotone, but where $\tau \lesssim \Delta t/2$ explicit Euler
    overshoots (step factor below $-1$)."""

    state_size: int = eqx.field(static=True)
    input_size: int = eqx.field(static=True)
    jacobian_structure: ClassVar[str] = "diagonal"
    W: Float[Array, "D P"]
    W2: Float[Array, "D P"]

    def __init__(self, state_size, input_size, *, scale=1.0, dtype=jnp.float64, key):
        k1, k2 = jr.split(key)
        self.state_size, self.input_size = state_size, input_size
        self.W = scale * jr.normal(k1, (state_size, input_size), dtype)
        self.W2 = jr.normal(k2, (state_size, input_size), dtype)

    def tau(self, u):
        return jax.nn.softplus(self.W @ u + 1)

    def vector_field(self, x, u):
        return (jnp.tanh(self.W2 @ u) - x - 0.5 * jnp.tanh(x)) / self.tau(u)


def numpy_fast_tau_implicit(neuron, x0, inputs, dt=1.0, iters=50):
    r"""Backward Euler for `FastTau` as a plain numpy loop: per step, scalar Newton on
    $r(y) = y - x - \Delta t\, (c - y - \tanh(y)/2)/\tau$ with the hand-written
    derivative $r'(y) = 1 + \Delta t\,(1 + \mathrm{sech}^2(y)/2)/\tau$."""
    W, W2 = np.asarray(neuron.W, np.float64), np.asarray(neuron.W2, np.float64)
    x = np.asarray(x0, np.float64)
    dts = np.broadcast_to(np.asarray(dt, np.float64), (inputs.shape[0],))
    out = []
    for u, h in zip(np.asarray(inputs, np.float64), dts):
        tau = _softplus(W @ u + 1)
        c = np.tanh(W2 @ u)
        y = x.copy()
        for _ in range(iters):
            r = y - x - h * (c - y - 0.5 * np.tanh(y)) / tau
            y = y - r / (1 + h * (1 + 0.5 / np.cosh(y) ** 2) / tau)
        x = y
        out.append(x)
    return np.stack(out)


class NaNField(lt.AbstractLiquidNeuron):
    """A (buggy) neuron whose vector field returns NaN wherever the first input
    channel exceeds 1 (e.g. a log of a negative number in user code)."""

    state_size: int = eqx.field(static=True)
    input_size: int = eqx.field(static=True)
    jacobian_structure: ClassVar[str] = "diagonal"
    w: Float[Array, " D"]

    def __init__(self, state_size, input_size, dtype=jnp.float64):
        self.state_size, self.input_size = state_size, input_size
        self.w = jnp.ones(state_size, dtype)

    def vector_field(self, x, u):
        bad = jnp.where(u[0] > 1, jnp.nan, 0).astype(x.dtype)
        return -self.w * x + jnp.tanh(jnp.sum(u)).astype(x.dtype) + bad
