import equinox as eqx
import jax
import jax.numpy as jnp


def linearise(neuron, discretisation, prev, guess, d, dt, method):
    """The step map at every step and its Jacobian with respect to the previous
    state (diagonal `(T, D)` or dense `(T, D, D)`), linearised around `guess` for an
    implicit step.

    For a diagonal map one JVP with a vector of ones gives both the values and the
    diagonal $\\partial\\Phi_i/\\partial x_i$ in one fused pass; no $D \\times D$ array
    is formed.
    """
    phi = lambda p, g, dd, h: discretisation.newton_step(neuron, p, g, dd, h)
    phi_all = lambda p: jax.vmap(phi)(p, guess, d, dt)
    if method == "newton":
        return jax.jvp(phi_all, (prev,), (jnp.ones_like(prev),))
    values = phi_all(prev)
    jac = jax.vmap(jax.jacfwd(phi, holomorphic=jnp.iscomplexobj(prev)))(
        prev, guess, d, dt
    )
    if method == "quasi":
        return values, jnp.diagonal(jac, axis1=-2, axis2=-1)
    return values, jac


def check_diagonal(neuron, discretisation, prev, guess, d, dt, diag):
    """Guard against a neuron declared diagonal that is not (its gradients would be
    silently wrong). With `diag` the JVP along ones (the row sums of the Jacobian
    $J$), a JVP along a fixed vector $v$ with distinct entries differs from
    $v \\odot$ `diag` by $\\sum_{j \\neq i} J_{ij} (v_j - v_i)$, which vanishes (up to
    rounding) exactly when $J$ is diagonal. One extra JVP of $\\Phi$ on at most 256
    evenly spaced steps (the structure does not change along the sequence)."""
    # A fixed pseudo-random probe in [0.5, 1.5) from a multiplicative hash of the
    # index: as good as `jax.random` here, and on a CPU ~20x cheaper.
    every = slice(None, None, max(1, prev.shape[0] // 256))
    prev_s, guess_s, d_s, dt_s, diag_s = jax.tree.map(
        lambda a: a[every], (prev, guess, d, dt, diag)
    )
    real = jnp.finfo(prev.dtype).dtype
    index = jax.lax.iota(jnp.uint32, prev_s.size).reshape(prev_s.shape)
    v = (index * jnp.uint32(2654435761)).astype(real) * jnp.asarray(2.0**-32, real)
    v = (0.5 + v).astype(prev.dtype)
    phi = lambda p, g, dd, h: discretisation.newton_step(neuron, p, g, dd, h)
    _, probe = jax.jvp(lambda p: jax.vmap(phi)(p, guess_s, d_s, dt_s), (prev_s,), (v,))
    err = jnp.max(jnp.abs(probe - v * diag_s), initial=0)
    scale = jnp.max(jnp.abs(diag), initial=0) + 1
    tol = jnp.sqrt(jnp.finfo(prev.dtype).eps) * scale
    return eqx.error_if(
        diag,
        err > tol,
        f"{type(neuron).__name__} declares jacobian_structure='diagonal', but its step "
        "Jacobian has off-diagonal entries, so the fixed-point gradients would be "
        "wrong. Find the coupled neurons with `lrc_toolkit.check_jacobian_structure`, "
        "then either make each neuron see the state only through its own component or "
        "declare jacobian_structure='dense' (and use "
        "`ParallelNewton(method='dense')` or `method='quasi'`).",
    )
