from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

from .._discretise import AbstractDiscretisation, Euler
from .._neurons.base import AbstractLiquidNeuron
from .._solution import RESULTS, Solution
from ._common import check_discretisation, drives, step_fn, validate
from .linear_scan import linear_recurrence


_METHODS = ("newton", "quasi", "dense")


def default_tolerances(dtype) -> tuple[float, float]:
    """`(rtol, atol)` for the Newton convergence test at a given dtype."""
    if jnp.finfo(dtype).bits >= 64:
        return 1e-9, 1e-9
    return 1e-5, 1e-5


def _shifted(x0: Array, states: Array) -> Array:
    """$(x_0, x_1, \\dots, x_{T-1})$: the state each step starts from."""
    return jnp.concatenate([x0[None], states[:-1]], axis=0)


def _linearise(phi, prev, d, dt, method):
    """$\\Phi$ at every step and its Jacobian (diagonal or dense) w.r.t. the state.

    For a diagonal $\\Phi$ one JVP with a vector of ones gives both the values and
    the diagonal $\\partial\\Phi_i/\\partial x_i$ in a single fused pass; no $D \\times D$
    array is formed.
    """
    phi_all = lambda p: jax.vmap(phi)(p, d, dt)
    if method == "newton":
        return jax.jvp(phi_all, (prev,), (jnp.ones_like(prev),))
    values = phi_all(prev)
    jac = jax.vmap(jax.jacfwd(phi, holomorphic=jnp.iscomplexobj(prev)))(prev, d, dt)
    if method == "quasi":
        return values, jnp.diagonal(jac, axis1=-2, axis2=-1)
    return values, jac


def _check_diagonal(phi, prev, d, dt, diag, name):
    """Guard against a neuron declared diagonal that is not (its gradients would be
    silently wrong). With `diag` the JVP along ones (the row sums of the Jacobian
    $J$), a JVP along a fixed vector $v$ with distinct entries differs from
    $v \\odot$ `diag` by $\\sum_{j \\neq i} J_{ij} (v_j - v_i)$, which vanishes (up to
    rounding) exactly when $J$ is diagonal. One extra JVP of $\\Phi$."""
    # A fixed pseudo-random probe in [0.5, 1.5) from a multiplicative hash of the
    # index: as good as `jax.random` here, and on a CPU ~20x cheaper (threefry
    # costs as much as a whole `lax.scan` forward pass at T = 17984, D = 64).
    # The structure does not change along the sequence: probe at most 256 evenly
    # spaced steps, so that the guard costs a small fraction of the adjoint.
    every = slice(None, None, max(1, prev.shape[0] // 256))
    prev_s, d_s, dt_s, diag_s = jax.tree.map(lambda a: a[every], (prev, d, dt, diag))
    real = jnp.finfo(prev.dtype).dtype
    index = jax.lax.iota(jnp.uint32, prev_s.size).reshape(prev_s.shape)
    v = (index * jnp.uint32(2654435761)).astype(real) * jnp.asarray(2.0**-32, real)
    v = (0.5 + v).astype(prev.dtype)
    _, probe = jax.jvp(lambda p: jax.vmap(phi)(p, d_s, dt_s), (prev_s,), (v,))
    err = jnp.max(jnp.abs(probe - v * diag_s), initial=0)
    scale = jnp.max(jnp.abs(diag), initial=0) + 1
    tol = jnp.sqrt(jnp.finfo(prev.dtype).eps) * scale
    return eqx.error_if(
        diag,
        err > tol,
        f"{name} declares jacobian_structure='diagonal', but its step Jacobian has "
        "off-diagonal entries, so the parallel solver's gradients would be wrong. "
        "Find the coupled neurons with `lrc_toolkit.check_jacobian_structure`, then "
        "either make each neuron see the state only through its own component or "
        "declare jacobian_structure='dense' (and use method='dense' or 'quasi').",
    )


def _newton(
    neuron,
    discretisation,
    x0,
    inputs,
    dt,
    init,
    method,
    rtol,
    atol,
    max_iters,
    throw,
    recurrence=linear_recurrence,
    safeguard=None,
):
    """The Newton loop. `recurrence(a, b, reverse=False)` solves the linear
    recurrence of each Newton step (the associative scan by default; a sharded or
    blocked scan plugs in here)."""
    phi = step_fn(neuron, discretisation)
    d = drives(neuron, inputs)  # input-only terms, once per sequence
    T = inputs.shape[0]

    def iterate(carry):
        k, X, _, _, last = carry
        prev = _shifted(x0, X)
        values, jac = _linearise(phi, prev, d, dt, method)
        if safeguard is not None and safeguard.clip is not None:
            jac = _clip_jacobian(jac, safeguard.clip)
        # Newton step: x_t = J_t x_{t-1} + (Φ(x^k_{t-1}) - J_t x^k_{t-1}); the first
        # step starts from the known x_0, so it is Φ(x_0) exactly.
        if jac.ndim == prev.ndim:
            b = values - jac * prev
        else:
            b = values - jnp.einsum("tij,tj->ti", jac, prev)
        jac = jac.at[0].set(0)
        b = b.at[0].set(values[0])
        X_new = recurrence(jac, b)
        delta = jnp.abs(X_new - X)
        # Non-finite or overflowing iterates: past sqrt(max float) the next
        # iteration's Jacobian products overflow anyway.
        finite = jnp.all(jnp.isfinite(X_new)) & (
            jnp.max(jnp.abs(X_new)) < _overflow(X_new)
        )
        # The relative test is a certificate only where errors cannot grow along the
        # sequence: on a locally expanding recurrence (some |∂Φ/∂x| > 1) two
        # successive iterates can be huge, wrong and relatively close, so there only
        # the absolute test counts.
        if jac.ndim == prev.ndim:
            gain = jnp.max(jnp.abs(jac))
        else:
            gain = jnp.max(jnp.sum(jnp.abs(jac), axis=-1))
        expanding = gain > 1
        tol = atol + jnp.where(expanding, 0, rtol) * jnp.abs(X_new)
        # Convergence without an extra pass: with θ = max|Δ_k| / max|Δ_{k-1}| the
        # observed contraction of the updates, the error of x^(k+1) is at most about
        # θ/(1-θ)|Δ_k| (Hairer & Wanner, Solving ODEs II, IV.8), so an iterate whose
        # estimated error is within tolerance is accepted without paying for another
        # iteration to confirm it. The plain test |Δ_k| <= tol is kept. The estimate
        # assumes the asymptotic regime of a non-expanding recurrence; elsewhere the
        # ratio of two updates is noise, and it is not used.
        step = jnp.max(delta)
        contracting = jnp.isfinite(last) & (step < 0.5 * last) & ~expanding
        theta = jnp.where(contracting, step / jnp.where(contracting, last, 1), 1)
        estimate = jnp.where(contracting, theta / (1 - theta), 1) * delta
        converged = jnp.all(delta <= tol) | (contracting & jnp.all(estimate <= tol))
        # After k iterations the first k states are exact, so k >= T is convergence.
        converged = converged | (k + 1 >= T)
        return k + 1, X_new, converged, finite, step

    def keep_going(carry):
        k, _, converged, finite, _ = carry
        return (k < max_iters) & ~converged & finite

    X = jnp.zeros((T, x0.shape[0]), x0.dtype) if init is None else init
    real = jnp.finfo(x0.dtype).dtype
    carry = (
        jnp.array(0),
        X,
        jnp.array(False),
        jnp.array(True),
        jnp.array(jnp.inf, real),
    )
    k, X, converged, finite, delta = jax.lax.while_loop(keep_going, iterate, carry)
    result = RESULTS.where(
        finite,
        RESULTS.where(converged, RESULTS.successful, RESULTS.newton_max_iters_reached),
        RESULTS.newton_nonfinite,
    )
    failed = result != RESULTS.successful
    fell_back = jnp.array(False)
    if safeguard is not None and safeguard.fallback:
        fell_back = failed

        # Recompute failed sequences step by step (under vmap only those are
        # replaced); the fixed point, and so the adjoint, is the same.
        def sequential():
            def body(x, args):
                x = phi(x, *args)
                return x, x

            return jax.lax.scan(body, x0, (d, dt))[1]

        X = jax.lax.cond(failed, sequential, lambda: X)
        finite_seq = jnp.all(jnp.isfinite(X))
        result = RESULTS.where(failed & finite_seq, RESULTS.successful, result)
    if throw:
        X = result.error_if(X, result != RESULTS.successful)
    return X, k, result, {"max_delta": delta, "fallback": fell_back}


def _overflow(x):
    return jnp.sqrt(jnp.finfo(x.dtype).max).astype(jnp.finfo(x.dtype).dtype)


def _clip_jacobian(jac, radius):
    """Damped Newton: shrink each step's Jacobian to norm at most `radius`
    (entrywise for a diagonal one, the row-sum norm for a dense one). The products
    in the scan then stay below `radius`^L over any L steps, so the linear step can
    no longer overflow on a locally expanding recurrence, and after k iterations the
    first k states are still exact (that property holds for any Jacobian
    approximation). Contracting steps (norm < `radius`) are left unchanged."""
    if jac.ndim == 2:
        norm = jnp.abs(jac)
    else:
        norm = jnp.max(jnp.sum(jnp.abs(jac), axis=-1), axis=-1)[:, None, None]
    return jac * jnp.minimum(1, radius / jnp.maximum(norm, jnp.finfo(norm.dtype).tiny))


class Safeguard(eqx.Module):
    """What the parallel solver does when Newton fails (see
    [`solve_parallel`][lrc_toolkit.solve_parallel]'s `fallback` and `damping`)."""

    fallback: bool = eqx.field(static=True)
    clip: float | None = eqx.field(static=True)


# Gradients at the fixed point. The converged states satisfy x_t = Φ(x_{t-1}, u_t; θ)
# for all t, so for a loss L(x_1..x_T) the adjoint λ_t = ∂L/∂x_t (total) obeys
#     λ_t = ḡ_t + J_{t+1}ᵀ λ_{t+1},   λ_T = ḡ_T,   J_{t+1} = ∂Φ/∂x(x_t, u_{t+1}),
# a reverse linear recurrence solved by the same associative scan. The cotangents of
# θ, u_t, Δt_t and x_0 are then Σ_t (∂Φ/∂·)ᵀ λ_t: one vmapped VJP of Φ. Nothing of
# the Newton loop is stored: memory O(TD).
@eqx.filter_custom_vjp
def _solve(vjp_arg, discretisation, *args):
    neuron, x0, inputs, dt = vjp_arg
    return _newton(neuron, discretisation, x0, inputs, dt, *args)


@_solve.def_fwd
def _solve_fwd(perturbed, vjp_arg, *args):
    out = _solve.fn(vjp_arg, *args)
    return out, out[0]


@_solve.def_bwd
def _solve_bwd(
    states,
    grad_obj,
    perturbed,
    vjp_arg,
    discretisation,
    init,
    method,
    rtol,
    atol,
    max_iters,
    throw,
    recurrence=linear_recurrence,
    safeguard=None,
):
    neuron, x0, inputs, dt = vjp_arg
    g_states = grad_obj[0]
    if g_states is None:
        g_states = jnp.zeros_like(states)
    prev = _shifted(x0, states)
    phi = step_fn(neuron, discretisation)
    d = drives(neuron, inputs)
    exact = "newton" if neuron.jacobian_structure == "diagonal" else "dense"
    _, jac = _linearise(phi, prev, d, dt, exact)
    if exact == "newton":
        jac = _check_diagonal(phi, prev, d, dt, jac, type(neuron).__name__)
    if jac.ndim == 3:
        jac = jnp.swapaxes(jac, -1, -2)
    # No conjugation for complex states: JAX cotangents are transposes of the
    # (holomorphic) JVP, λ_t = ḡ_t + J_{t+1}ᵀ λ_{t+1}, as `jax.vjp` computes them.
    next_jac = jnp.concatenate([jac[1:], jnp.zeros_like(jac[:1])], axis=0)
    lam = recurrence(next_jac, g_states, reverse=True)

    def all_steps(neuron, prev, inputs, dt):
        return jax.vmap(step_fn(neuron, discretisation))(
            prev, drives(neuron, inputs), dt
        )

    _, vjp = eqx.filter_vjp(all_steps, neuron, prev, inputs, dt)
    g_neuron, g_prev, g_inputs, g_dt = vjp(lam)
    return g_neuron, g_prev[0], g_inputs, g_dt


def solve_parallel(
    neuron: AbstractLiquidNeuron,
    x0: ArrayLike,
    inputs: ArrayLike,
    *,
    dt: ArrayLike = 1.0,
    discretisation: AbstractDiscretisation = Euler(),
    method: str | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    max_iters: int | None = None,
    init: ArrayLike | None = None,
    throw: bool = True,
    recurrence: Callable | None = None,
    fallback: str | None = None,
    damping: float | None = None,
) -> Solution:
    r"""Evaluate the recurrence $x_t = \Phi(x_{t-1}, u_t)$ for all $t$ at once by
    Newton's method, each Newton step being a linear recurrence solved by an
    associative scan.

    At iterate $x^{(k)}$, with $J_t = \partial\Phi/\partial x\,(x^{(k)}_{t-1}, u_t)$,

    $$x^{(k+1)}_t = J_t\, x^{(k+1)}_{t-1} + \Phi(x^{(k)}_{t-1}, u_t) - J_t\, x^{(k)}_{t-1},$$

    solved with `jax.lax.associative_scan` in $O(\log T)$ depth. For a neuron with a
    diagonal Jacobian this is exact Newton at $O(TD)$ work per iteration. After $k$
    iterations the first $k$ states are exact, so at most $T$ iterations are ever
    needed; contracting systems need a handful. Input-only terms
    ([`drive`][lrc_toolkit.AbstractLiquidNeuron.drive]) are computed once.

    Reverse-mode gradients are computed at the fixed point by one reverse linear
    scan (the adjoint) and one vmapped VJP of $\Phi$, not by differentiating the
    loop; they flow to the neuron's parameters, `x0`, `inputs` and `dt`.

    **Arguments:**

    - `neuron`: an [`AbstractLiquidNeuron`][lrc_toolkit.AbstractLiquidNeuron].
    - `x0`: the initial state, shape `(D,)`.
    - `inputs`: shape `(T, P)`.
    - `dt`: the step size, scalar or shape `(T,)`.
    - `discretisation`: the map $\Phi$, default [`Euler()`][lrc_toolkit.Euler].
    - `method`: `"newton"` (exact for diagonal neurons, the default for them);
        `"dense"` (full-Jacobian Newton, DEER, $O(TD^3)$; the default for dense
        neurons); `"quasi"` (the diagonal of the full Jacobian: cheap steps, more
        iterations).
    - `rtol`, `atol`: converged when $|x^{(k+1)} - x^{(k)}| \le$ `atol + rtol`
        $|x^{(k+1)}|$ everywhere, or (on a contracting iteration) when the error
        estimate $\theta/(1-\theta)\,|x^{(k+1)} - x^{(k)}|$, with $\theta$ the ratio
        of the last two updates' largest entries, is within that tolerance: this
        saves the final confirming iteration. Defaults: $10^{-5}$ in float32,
        $10^{-9}$ in float64.
    - `max_iters`: the iteration limit; default $T$ (enough in exact arithmetic).
    - `init`: an initial guess for the states, shape `(T, D)` (default zeros), e.g.
        the previous training step's states.
    - `throw`: raise an error if the iteration does not converge or produces
        non-finite values. With `False`, check `Solution.result`/`.converged`.
    - `recurrence`: the solver of each Newton step's linear recurrence,
        `recurrence(a, b, reverse=False)` with the signature of
        [`linear_recurrence`][lrc_toolkit.linear_recurrence] (the default, whose
        `scan="auto"` is the associative scan on accelerators and, on a CPU, a
        sequential `lax.scan`, faster there); used by
        the forward iteration and the adjoint. E.g. the sharded scan behind
        [`solve_parallel_sharded`][lrc_toolkit.solve_parallel_sharded].
    - `fallback`: `"sequential"` recomputes a sequence whose Newton iteration failed
        (non-finite, overflowing or out of iterations) step by step with
        `lax.scan`; under `jax.vmap` only the failed sequences are replaced.
        `stats["fallback"]` says whether it happened. Default `None`: report (or
        raise, with `throw`).
    - `damping`: a radius $\rho$; damped Newton clips every step's Jacobian to norm
        $\le \rho$ before the scan, so a locally expanding recurrence cannot
        overflow the linear step (contracting steps are unchanged; convergence
        within $T$ iterations is kept). Default `None` (exact Newton).

    **Returns:**

    A [`Solution`][lrc_toolkit.Solution] with `states` (T, D), `iterations` and
    `result`; `stats["max_delta"]` is the last Newton update's largest entry and
    `stats["fallback"]` whether the sequential fallback ran.

    ??? cite "References"

        ```bibtex
        @inproceedings{lim2024parallelizing,
          title={Parallelizing non-linear sequential models over the sequence length},
          author={Lim, Yi Heng and Zhu, Qi and Selfridge, Joshua and Kasim, Muhammad Firmansyah},
          booktitle={ICLR}, year={2024}
        }
        @inproceedings{gonzalez2024towards,
          title={Towards Scalable and Stable Parallelization of Nonlinear RNNs},
          author={Gonzalez, Xavier and Warrington, Andrew and Smith, Jimmy T.H. and Linderman, Scott W.},
          booktitle={NeurIPS}, year={2024}
        }
        ```
    """
    check_discretisation(discretisation)
    x0, inputs, dt = validate(neuron, x0, inputs, dt)
    if method is None:
        method = "newton" if neuron.jacobian_structure == "diagonal" else "dense"
    if method not in _METHODS:
        raise ValueError(f"`method` must be one of {_METHODS}, got {method!r}.")
    if method == "newton" and neuron.jacobian_structure != "diagonal":
        raise ValueError(
            f"method='newton' needs a neuron with a diagonal Jacobian, but "
            f"{type(neuron).__name__} declares jacobian_structure="
            f"{neuron.jacobian_structure!r}. Use method='dense' (exact Newton with "
            "full Jacobians) or method='quasi' (their diagonal)."
        )
    T, D = inputs.shape[0], x0.shape[0]
    default_rtol, default_atol = default_tolerances(x0.dtype)
    rtol = default_rtol if rtol is None else rtol
    atol = default_atol if atol is None else atol
    if max_iters is None:
        max_iters = T
    if not isinstance(max_iters, int) or max_iters < 1:
        raise ValueError(f"`max_iters` must be a positive integer, got {max_iters!r}.")
    if rtol < 0 or atol < 0:
        raise ValueError(f"`rtol` and `atol` must be non-negative, got {rtol}, {atol}.")
    if init is not None:
        init = jnp.asarray(init, dtype=x0.dtype)
        if init.shape != (T, D):
            raise ValueError(
                f"`init` must have shape (T, D) = ({T}, {D}), got {init.shape}."
            )
    if fallback not in (None, "sequential"):
        raise ValueError(f"`fallback` must be None or 'sequential', got {fallback!r}.")
    if damping is not None and not damping > 0:
        raise ValueError(f"`damping` must be a positive radius, got {damping!r}.")
    safeguard = None
    if fallback is not None or damping is not None:
        safeguard = Safeguard(fallback=fallback == "sequential", clip=damping)
    states, iterations, result, stats = _solve(
        (neuron, x0, inputs, dt),
        discretisation,
        init,
        method,
        rtol,
        atol,
        max_iters,
        throw,
        linear_recurrence if recurrence is None else recurrence,
        safeguard,
    )
    return Solution(states=states, result=result, iterations=iterations, stats=stats)
