"""Two-variable neurons in the parallel view (issues 19 and 20): exact gradients
with `ParallelNewton(fallback=...)`, the default Newton iteration on locally
expanding dynamics (FitzHugh–Nagumo at Δt = 0.1), and block-diagonal neurons
(`jacobian_structure = "block"`) against the sequential solve and autodiff through
a plain `lax.scan`."""

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import pytest
from jaxtyping import Array

import lrc_toolkit as lt

from .helpers import max_abs_diff


class DenseFHN(lt.AbstractLiquidNeuron):
    """FitzHugh–Nagumo neurons, state (v_0, w_0, v_1, w_1, ...), declared dense (as
    a user would before block neurons existed): each neuron's current is
    `i_ext + w_in @ u`."""

    state_size: int
    input_size: int
    w_in: Array
    i_ext: Array
    jacobian_structure: ClassVar[str] = "dense"

    def vector_field(self, x, u):
        v, w = x[0::2], x[1::2]
        current = self.i_ext + self.w_in @ u
        dv = v - v**3 / 3 - w + current
        dw = 0.08 * (v + 0.7 - 0.8 * w)
        return jnp.stack([dv, dw], axis=-1).reshape(-1)


def dense_fhn(key, N=4, P=2):
    k1, k2 = jr.split(key)
    return DenseFHN(
        2 * N, P, 0.5 * jr.normal(k1, (N, P)), 0.5 + 0.1 * jr.normal(k2, (N,))
    )


def scan_states(neuron, x0, inputs, dt):
    """Explicit Euler as a plain `lax.scan` over `vector_field`: the reference whose
    autodiff gradients the solvers' fixed-point gradients must equal."""

    def step(x, u_h):
        u, h = u_h
        x = x + h * neuron.vector_field(x, u)
        return x, x

    dts = jnp.broadcast_to(jnp.asarray(dt, x0.dtype), inputs.shape[:1])
    return jax.lax.scan(step, x0, (inputs, dts))[1]


def _loss(states, inputs):
    # A loss that weighs every state differently (a sum of squares would hide a
    # permuted or transposed cotangent less well).
    weights = jnp.cos(jnp.arange(states.size, dtype=states.dtype)).reshape(states.shape)
    return jnp.sum(weights * jnp.tanh(states)) + 0.1 * jnp.sum(inputs**2)


# -------------------------------------------------------- fallback gradients


@pytest.mark.slow
def test_fallback_gradients_are_exact(getkey):
    """Exact Newton without its safeguard diverges to NaN states and the sequential
    fallback supplies the states: the gradients are those of the fallback's
    states, not NaN."""
    neuron, x0 = dense_fhn(getkey()), jnp.full(8, 0.1)
    inputs = jr.normal(getkey(), (200, 2))
    solver = lt.ParallelNewton(damping=jnp.inf, fallback=lt.Sequential())

    def loss(n, x0, u):
        sol = lt.solve(n, x0, u, solver=solver, dt=0.1, throw=False)
        return _loss(sol.states, u), sol

    def reference(n, x0, u):
        return _loss(scan_states(n, x0, u, 0.1), u)

    (_, sol), grads = eqx.filter_value_and_grad(loss, has_aux=True)(neuron, x0, inputs)
    assert bool(sol.stats["fallback"]) and sol.converged
    plain = lt.ParallelNewton(damping=jnp.inf)
    newton = lt.solve(neuron, x0, inputs, solver=plain, dt=0.1, throw=False)
    assert not bool(jnp.all(jnp.isfinite(newton.states)))
    want = eqx.filter_grad(reference)(neuron, x0, inputs)
    assert max_abs_diff(grads, want) < 1e-10
    # x0 and the inputs as well.
    got_x0, got_u = jax.grad(lambda a, b: loss(neuron, a, b)[0], argnums=(0, 1))(
        x0, inputs
    )
    want_x0, want_u = jax.grad(lambda a, b: reference(neuron, a, b), argnums=(0, 1))(
        x0, inputs
    )
    assert max_abs_diff(got_x0, want_x0) < 1e-10
    assert max_abs_diff(got_u, want_u) < 1e-10


@pytest.mark.slow
def test_fallback_gradients_under_vmap(getkey):
    """Under `vmap` some sequences converge (tiny steps: Newton needs few
    iterations) and some fall back; every gradient equals autodiff through the
    sequential scan of its own sequence."""
    neuron, x0 = dense_fhn(getkey()), jnp.full(8, 0.1)
    inputs = jr.normal(getkey(), (4, 60, 2))
    dts = jnp.array([1e-4, 0.1, 1e-4, 0.2])
    solver = lt.ParallelNewton(max_iters=4, fallback=lt.Sequential())

    def loss(n, u, h):
        sol = lt.solve(n, x0, u, solver=solver, dt=h, throw=False)
        return _loss(sol.states, u), sol

    def batch_loss(n, u, h):
        losses, sols = jax.vmap(loss, in_axes=(None, 0, 0))(n, u, h)
        return jnp.sum(losses), sols

    (_, sols), grads = eqx.filter_value_and_grad(batch_loss, has_aux=True)(
        neuron, inputs, dts
    )
    assert [bool(f) for f in sols.stats["fallback"]] == [False, True, False, True]
    assert bool(jnp.all(sols.converged))

    def reference(n, u, h):
        return sum(_loss(scan_states(n, x0, u[i], h[i]), u[i]) for i in range(4))

    want = eqx.filter_grad(reference)(neuron, inputs, dts)
    assert max_abs_diff(grads, want) < 1e-10
    got_u = jax.grad(lambda u: batch_loss(neuron, u, dts)[0])(inputs)
    want_u = jax.grad(lambda u: reference(neuron, u, dts))(inputs)
    assert max_abs_diff(got_u, want_u) < 1e-10


def test_failed_solve_without_fallback_has_nan_gradients(getkey):
    """Without a fallback a diverged solve's gradients stay NaN (the failure is
    visible, not silently zero)."""
    neuron, x0 = dense_fhn(getkey()), jnp.full(8, 0.1)
    inputs = jr.normal(getkey(), (200, 2))
    solver = lt.ParallelNewton(damping=jnp.inf)  # exact Newton, no safeguard

    def loss(n):
        sol = lt.solve(n, x0, inputs, solver=solver, dt=0.1, throw=False)
        return _loss(sol.states, inputs), sol

    (_, sol), grads = eqx.filter_value_and_grad(loss, has_aux=True)(neuron)
    assert not sol.converged
    assert bool(jnp.any(jnp.isnan(grads.w_in)))
