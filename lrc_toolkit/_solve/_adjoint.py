import equinox as eqx
import jax
import jax.numpy as jnp

from .._blocks import transpose
from ._linearise import check_structure, drives, linearise, newton_map, shifted


# The exact linearisation of each declared Jacobian structure.
_EXACT = {"diagonal": "newton", "block": "block", "dense": "dense"}


# Gradients at the fixed point, shared by every solver whose states solve the
# recurrence x_t = Φ(x_{t-1}, u_t; θ) (ParallelNewton, Sequential). For a loss
# L(x_1..x_T) the adjoint λ_t = ∂L/∂x_t (total) obeys
#     λ_t = ḡ_t + J_{t+1}ᵀ λ_{t+1},   λ_T = ḡ_T,   J_{t+1} = ∂Φ/∂x(x_t, u_{t+1}),
# one reverse linear recurrence; the cotangents of θ, u_t, Δt_t and x_0 are then
# Σ_t (∂Φ/∂·)ᵀ λ_t: one vmapped VJP of Φ. For an implicit step Φ is defined by its
# residual and J_t = (I − Δt F_t)^{-1} (the discretisation's `newton_step` around
# the converged state has exactly these derivatives). For a block-diagonal neuron
# J_tᵀ is its transposed k × k blocks. Nothing of the forward pass is
# stored: memory O(TD).
@eqx.filter_custom_vjp
def fixed_point_solve(vjp_arg, forward, discretisation, recurrence):
    """`forward(neuron, x0, inputs, dt) -> (states, aux)`, differentiated at the
    fixed point. `vjp_arg = (neuron, x0, inputs, dt)`; `recurrence(a, b,
    reverse=True)` solves the adjoint's reverse linear recurrence."""
    neuron, x0, inputs, dt = vjp_arg
    return forward(neuron, x0, inputs, dt)


@fixed_point_solve.def_fwd
def _fwd(perturbed, vjp_arg, forward, discretisation, recurrence):
    out = fixed_point_solve.fn(vjp_arg, forward, discretisation, recurrence)
    return out, out[0]


@fixed_point_solve.def_bwd
def _bwd(states, grad_obj, perturbed, vjp_arg, forward, discretisation, recurrence):
    neuron, x0, inputs, dt = vjp_arg
    g_states = grad_obj[0]
    if g_states is None:
        g_states = jnp.zeros_like(states)
    # A zero cotangent has a zero gradient, whatever the states: the branch not
    # taken by `ParallelNewton(fallback=...)` (a `select` under `vmap`) sends zeros
    # to a failed, possibly non-finite, solve, where the Jacobians would be NaN and
    # 0 * NaN would poison the gradient. Linearise there at finite states instead.
    unused = ~jnp.any(g_states != 0)
    states = jnp.where(unused, jax.lax.stop_gradient(x0)[None], states)
    prev = shifted(x0, states)
    d = drives(neuron, inputs)
    exact = _EXACT[neuron.jacobian_structure]
    _, jac = linearise(neuron, discretisation, prev, states, d, dt, exact)
    if exact in ("newton", "block"):
        jac = check_structure(neuron, discretisation, prev, states, d, dt, jac)
    jac = transpose(jac, states)
    # No conjugation for complex states: JAX cotangents are transposes of the
    # (holomorphic) JVP, as `jax.vjp` computes them.
    next_jac = jnp.concatenate([jac[1:], jnp.zeros_like(jac[:1])], axis=0)
    lam = recurrence(next_jac, g_states, reverse=True)

    def all_steps(neuron, prev, inputs, dt):
        step = newton_map(neuron, discretisation, states, drives(neuron, inputs), dt)
        return step(prev)

    _, vjp = eqx.filter_vjp(all_steps, neuron, prev, inputs, dt)
    g_neuron, g_prev, g_inputs, g_dt = vjp(lam)
    return g_neuron, g_prev[0], g_inputs, g_dt
