"""The step map $\\Phi$ of a discretised neuron along a sequence, and its Jacobians
with respect to the previous state (diagonal, block or dense): what the Newton
solver, the adjoint and the stability checks linearise."""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PyTree

from .._blocks import block_jacobian, block_matvec, block_size
from .._neurons.base import AbstractLiquidNeuron


def drives(neuron: AbstractLiquidNeuron, inputs) -> PyTree[Array]:
    """`neuron.drive` at every time step: the input-only terms, computed once."""
    return jax.vmap(neuron.drive)(inputs)


def step_fn(neuron, discretisation):
    """The map $\\Phi(x, d, \\Delta t)$ with output dtype checked against `x`."""

    def phi(x, d, dt):
        out = discretisation.step(neuron, x, d, dt)
        if out.shape != x.shape or out.dtype != x.dtype:
            raise ValueError(
                f"{type(neuron).__name__}'s vector field returned shape {out.shape} and "
                f"dtype {out.dtype} for a state of shape {x.shape} and dtype {x.dtype}; "
                "`vector_field(x, u)` must return an array of the same shape and dtype "
                "as `x`."
            )
        return out

    return phi


def shifted(x0: Array, states: Array) -> Array:
    """$(x_0, x_1, \\dots, x_{T-1})$: the state each step starts from."""
    return jnp.concatenate([x0[None], states[:-1]], axis=0)


def check_after_scan(neuron, discretisation, prev, d, dt) -> tuple[Array, Array]:
    r"""`(max_factor, unstable)` of the steps taken from the states `prev`, for all
    steps at once by the discretisation's `step_and_check` (vmapped, gradients
    stopped): the largest $|\partial\Phi_i/\partial x_i|$, skipping NaN factors
    (the steps after a non-finite state, which the outcome names), and whether a
    step amplified a damped component. The forward check of `Sequential` and of the
    ODE view on fixed steps."""
    prev, d, dt = jax.lax.stop_gradient((prev, d, dt))
    check = lambda p, dd, h: discretisation.step_and_check(neuron, p, dd, h)[1:]
    factor, unstable = jax.vmap(check)(prev, d, dt)
    real = jnp.finfo(factor.dtype).dtype
    return jnp.nanmax(jnp.abs(factor).astype(real)), jnp.any(unstable)


def newton_map(neuron, discretisation, guess, d, dt):
    """The step map of every step at once, as a function of the previous states:
    `prev -> (newton_step(neuron, prev_t, guess_t, d_t, dt_t))_t`, with `guess` the
    states an implicit step is linearised around (ignored by an explicit one)."""
    step = functools.partial(discretisation.newton_step, neuron)
    return lambda prev: jax.vmap(step)(prev, guess, d, dt)


def linearise(neuron, discretisation, prev, guess, d, dt, method):
    """The step map at every step and its Jacobian with respect to the previous
    state (diagonal `(T, D)`, block `(T, N, k, k)` or dense `(T, D, D)`), linearised
    around `guess` for an implicit step.

    For a diagonal map one JVP with a vector of ones gives both the values and the
    diagonal $\\partial\\Phi_i/\\partial x_i$ in one fused pass; for a block-diagonal
    map ($k \\times k$ blocks) $k$ JVPs give the blocks. No $D \\times D$ array is
    formed in either case. `method="quasi"` on a block neuron takes the diagonal of
    its blocks.
    """
    phi = functools.partial(discretisation.newton_step, neuron)
    phi_all = newton_map(neuron, discretisation, guess, d, dt)
    if method == "newton":
        return jax.jvp(phi_all, (prev,), (jnp.ones_like(prev),))
    if method == "block" or (
        method == "quasi" and neuron.jacobian_structure == "block"
    ):
        values, blocks = block_jacobian(phi_all, prev, block_size(neuron))
        if method == "quasi":
            return values, jnp.diagonal(blocks, axis1=-2, axis2=-1).reshape(prev.shape)
        return values, blocks
    values = phi_all(prev)
    jac = jax.vmap(jax.jacfwd(phi, holomorphic=jnp.iscomplexobj(prev)))(
        prev, guess, d, dt
    )
    if method == "quasi":
        return values, jnp.diagonal(jac, axis1=-2, axis2=-1)
    return values, jac


def misdeclared(neuron, discretisation, prev, guess, d, dt, jac=None) -> Array:
    """Whether the step Jacobian has entries outside the structure the neuron
    declares (`"diagonal"` or `"block"`): then its gradients at the fixed point
    and, for a diagonal neuron, its step factors (row sums) would be silently
    wrong. A JVP of $\\Phi$ along a fixed vector $v$ with distinct entries must
    equal the declared Jacobian applied to $v$ ($v \\odot$ the diagonal, or the
    blocks times $v$), which holds (up to rounding) exactly when nothing outside
    the structure is non-zero: for a diagonal one the difference is
    $\\sum_{j \\neq i} J_{ij} (v_j - v_i)$. One extra JVP on at most 256 evenly
    spaced steps (the structure does not change along the sequence); `jac`: the
    declared Jacobian at every step (the diagonal `(T, D)` or the blocks
    `(T, N, k, k)`), computed there when not given (the forward pass).

    A scalar boolean. The forward passes report it as
    `RESULTS.jacobian_structure_mismatch`; the adjoint raises (`check_structure`)."""
    every = slice(None, None, max(1, prev.shape[0] // 256))
    prev_s, guess_s, d_s, dt_s = jax.tree.map(lambda a: a[every], (prev, guess, d, dt))
    phi_s = newton_map(neuron, discretisation, guess_s, d_s, dt_s)
    v = _probe(prev_s)
    block = neuron.jacobian_structure == "block"
    if jac is not None:
        jac_s = jac[every]
    elif block:
        jac_s = block_jacobian(phi_s, prev_s, block_size(neuron))[1]
    else:
        jac_s = jax.jvp(phi_s, (prev_s,), (jnp.ones_like(prev_s),))[1]
    _, probe = jax.jvp(phi_s, (prev_s,), (v,))
    declared = block_matvec(jac_s, v) if block else v * jac_s
    err = jnp.max(jnp.abs(probe - declared), initial=0)
    scale = jnp.max(jnp.abs(jac_s if jac is None else jac), initial=0) + 1
    tol = jnp.sqrt(jnp.finfo(prev.dtype).eps) * scale
    return jax.lax.stop_gradient(err > tol)


def check_structure(neuron, discretisation, prev, guess, d, dt, jac):
    """`jac` with a run-time error attached if the neuron's step Jacobian is not
    of its declared structure (see `misdeclared`): the adjoint's check, where no
    `RESULTS` member can be returned. The message is the member's."""
    from .._solution import RESULTS

    return eqx.error_if(
        jac,
        misdeclared(neuron, discretisation, prev, guess, d, dt, jac),
        f"{type(neuron).__name__}: " + RESULTS[RESULTS.jacobian_structure_mismatch],
    )


def _probe(x):
    # A fixed pseudo-random probe in [0.5, 1.5) from a multiplicative hash of the
    # index: as good as `jax.random` here, and on a CPU ~20x cheaper.
    real = jnp.finfo(x.dtype).dtype
    index = jax.lax.iota(jnp.uint32, x.size).reshape(x.shape)
    v = (index * jnp.uint32(2654435761)).astype(real) * jnp.asarray(2.0**-32, real)
    return (0.5 + v).astype(x.dtype)
