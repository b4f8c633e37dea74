from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp

from .._solution import RESULTS, Solution
from ._adjoint import fixed_point_solve
from ._common import (
    drives,
    outcome,
    overflow_bound,
)
from ._linearise import linearise
from .base import AbstractLiquidSolver
from .linear_scan import AbstractRecurrence, default_recurrence, SequentialScan


_METHODS = ("newton", "quasi", "dense")


def default_tolerances(dtype) -> tuple[float, float]:
    """`(rtol, atol)` for the Newton convergence test at a given dtype."""
    if jnp.finfo(dtype).bits >= 64:
        return 1e-9, 1e-9
    return 1e-5, 1e-5


def _clip_jacobian(jac, radius):
    """Damped Newton: shrink each step's Jacobian to norm at most `radius`
    (entrywise for a diagonal one, the row-sum norm for a dense one). The products
    in the scan then stay below `radius`^L over any L steps, so the linear step can
    no longer overflow on a locally expanding recurrence, and after k iterations the
    first k states are still exact (that holds for any Jacobian approximation).
    Contracting steps (norm < `radius`) are left unchanged."""
    if jac.ndim == 2:
        norm = jnp.abs(jac)
    else:
        norm = jnp.max(jnp.sum(jnp.abs(jac), axis=-1), axis=-1)[:, None, None]
    return jac * jnp.minimum(1, radius / jnp.maximum(norm, jnp.finfo(norm.dtype).tiny))


def _diagonal_of(jac, prev):
    return jac if jac.ndim == prev.ndim else jnp.diagonal(jac, axis1=-2, axis2=-1)


class ParallelNewton(AbstractLiquidSolver):
    r"""Evaluate the recurrence $x_t = \Phi(x_{t-1}, u_t)$ for all $t$ at once by
    Newton's method, each Newton step being a linear recurrence solved by an
    associative scan (the SSM view).

    At iterate $x^{(k)}$, with $J_t = \partial\Phi/\partial x\,(x^{(k)}_{t-1}, u_t)$,

    $$x^{(k+1)}_t = J_t\, x^{(k+1)}_{t-1} + \Phi(x^{(k)}_{t-1}, u_t) - J_t\, x^{(k)}_{t-1},$$

    solved in $O(\log T)$ depth. For a neuron with a diagonal Jacobian this is exact
    Newton at $O(TD)$ work per iteration. For an explicit step, after $k$ iterations
    the first $k$ states are exact, so at most $T$ iterations are needed;
    contracting systems need a handful. For [`ImplicitEuler`][lrc_toolkit.ImplicitEuler]
    it is Newton on the residuals of the whole trajectory. Input-only terms
    ([`drive`][lrc_toolkit.AbstractLiquidNeuron.drive]) are computed once.

    Reverse-mode gradients are computed at the fixed point (one reverse linear
    recurrence and one vmapped VJP of $\Phi$), not through the loop; they flow to
    the neuron's parameters, `x0`, `inputs` and `dt`. Memory $O(TD)$.

    `Solution.stats`: `max_factor` (largest $|\partial\Phi_i/\partial x_i|$ of the last
    linearisation), `unstable`, `max_delta` (the last update's largest entry) and
    `fallback` (whether the fallback solver ran).

    **Arguments:**

    - `method`: `"newton"` (exact for diagonal neurons, their default); `"dense"`
        (full-Jacobian Newton, DEER, $O(TD^3)$; the default for dense neurons);
        `"quasi"` (the diagonal of the full Jacobian: cheap steps, more iterations).
    - `rtol`, `atol`: converged when $|x^{(k+1)} - x^{(k)}| \le$ `atol + rtol`
        $|x^{(k+1)}|$ everywhere (the relative part only on non-expanding steps), or,
        on a contracting iteration, when the error estimate
        $\theta/(1-\theta)\,|x^{(k+1)} - x^{(k)}|$ ($\theta$ the ratio of the last two
        updates) is within it. Defaults: $10^{-5}$ in float32, $10^{-9}$ in float64.
    - `max_iters`: the iteration limit; default $T$.
    - `damping`: a radius $\rho$: clip every step's Jacobian to norm $\le \rho$
        before the scan, so a locally expanding recurrence cannot overflow the
        linear step (contracting steps are unchanged). Default `None` (exact Newton).
    - `fallback`: a solver that recomputes a sequence whose Newton iteration failed
        (non-finite or out of iterations), e.g. [`Sequential()`][lrc_toolkit.Sequential];
        under `jax.vmap` only the failed sequences are recomputed. Default `None`.
    - `recurrence`: an [`AbstractRecurrence`][lrc_toolkit.AbstractRecurrence]:
        [`AssociativeScan()`][lrc_toolkit.AssociativeScan],
        [`SequentialScan()`][lrc_toolkit.SequentialScan] or
        [`ShardedScan(mesh)`][lrc_toolkit.ShardedScan] (time sharded across
        devices). Default: the sequential scan on a CPU, the associative one
        elsewhere.
    - `chunk_size`: each Newton iteration linearises and solves the recurrence
        this many steps at a time (cache blocking: the per-step intermediates stay
        in cache; the result is the same). Default, with the sequential (CPU) scan:
        chunks of about $32\,768 / D$ steps (512 at $D = 64$), evened out over the
        sequence, and one chunk when $T$ is at most twice that; with the other
        recurrences the whole sequence.

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

    method: Literal["newton", "quasi", "dense"] | None = eqx.field(
        default=None, static=True
    )
    rtol: float | None = eqx.field(default=None, static=True)
    atol: float | None = eqx.field(default=None, static=True)
    max_iters: int | None = eqx.field(default=None, static=True)
    damping: float | None = eqx.field(default=None, static=True)
    fallback: AbstractLiquidSolver | None = None
    recurrence: AbstractRecurrence | None = None
    chunk_size: int | None = eqx.field(default=None, static=True)

    def __check_init__(self):
        if self.method is not None and self.method not in _METHODS:
            raise ValueError(
                f"`method` must be one of {_METHODS}, got {self.method!r}."
            )
        if self.max_iters is not None and (
            isinstance(self.max_iters, bool)
            or not isinstance(self.max_iters, int)
            or self.max_iters < 1
        ):
            raise ValueError(
                f"`max_iters` must be a positive integer, got {self.max_iters!r}."
            )
        for name in ("rtol", "atol"):
            value = getattr(self, name)
            if value is not None and not value >= 0:
                raise ValueError(f"`{name}` must be non-negative, got {value!r}.")
        if self.damping is not None and not self.damping > 0:
            raise ValueError(
                f"`damping` must be a positive radius, got {self.damping!r}."
            )
        if self.chunk_size is not None and (
            isinstance(self.chunk_size, bool)
            or not isinstance(self.chunk_size, int)
            or self.chunk_size < 1
        ):
            raise ValueError(
                f"`chunk_size` must be a positive integer, got {self.chunk_size!r}."
            )
        if self.fallback is not None and (
            not isinstance(self.fallback, AbstractLiquidSolver)
            or isinstance(self.fallback, ParallelNewton)
        ):
            raise TypeError(
                "`fallback` must be a non-Newton solver such as `Sequential()`, got "
                f"{type(self.fallback).__name__}."
            )
        if self.recurrence is not None and not isinstance(
            self.recurrence, AbstractRecurrence
        ):
            raise TypeError(
                "`recurrence` must be an `lrc_toolkit.AbstractRecurrence` such as "
                "`AssociativeScan()`, `SequentialScan()` or `ShardedScan(mesh)`, got "
                f"{type(self.recurrence).__name__}."
            )

    def resolved_method(self, neuron) -> str:
        method = self.method
        if method is None:
            method = "newton" if neuron.jacobian_structure == "diagonal" else "dense"
        if method == "newton" and neuron.jacobian_structure != "diagonal":
            raise ValueError(
                f"method='newton' needs a neuron with a diagonal Jacobian, but "
                f"{type(neuron).__name__} declares jacobian_structure="
                f"{neuron.jacobian_structure!r}. Use `ParallelNewton(method='dense')` "
                "(exact Newton with full Jacobians) or `method='quasi'` (their "
                "diagonal)."
            )
        return method

    def run(self, neuron, x0, inputs, dt, ts, discretisation, init):
        method = self.resolved_method(neuron)
        recurrence = (
            default_recurrence() if self.recurrence is None else self.recurrence
        )
        T = inputs.shape[0]
        if init is not None and init.shape != (T, x0.shape[0]):
            raise ValueError(
                f"`init` must have shape (T, D) = ({T}, {x0.shape[0]}), got {init.shape}."
            )

        def solve_fn(x0, inputs, dt, init):
            forward = _Forward(self, discretisation, recurrence, method, init)
            states, (k, result, stats) = fixed_point_solve(
                (neuron, x0, inputs, dt), forward, discretisation, recurrence
            )
            return Solution(states=states, result=result, iterations=k, stats=stats)

        sol = recurrence.around(solve_fn, x0, inputs, dt, init)
        if self.fallback is not None:
            sol = self._fall_back(sol, neuron, x0, inputs, dt, ts, discretisation)
        return sol

    def _fall_back(self, sol, neuron, x0, inputs, dt, ts, discretisation):
        failed = sol.result != RESULTS.successful
        fallback = self.fallback

        def rerun():
            alt = fallback.run(neuron, x0, inputs, dt, ts, discretisation, None)
            return alt.states, alt.result

        # Under vmap only the failed sequences are replaced (`cond` becomes `select`
        # there, so both branches run; outside vmap only one does).
        states, result = jax.lax.cond(failed, rerun, lambda: (sol.states, sol.result))
        stats = dict(sol.stats, fallback=failed)
        return Solution(
            states=states, result=result, iterations=sol.iterations, stats=stats
        )


# State entries per chunk of the cache-blocked sweep (a chunk's values, Jacobians,
# offsets and new states, float32: about 0.5 MiB, within a CPU core's L2 cache).
_CHUNK_ELEMENTS = 512 * 64


def _pad(x, n):
    """Repeat the last step `n` times (padding to whole chunks; dropped after)."""
    if n == 0:
        return x
    return jnp.concatenate([x, jnp.repeat(x[-1:], n, axis=0)], axis=0)


class _Sweep(eqx.Module):
    """One Newton iteration: linearise around the iterate and solve the linear
    recurrence, chunk by chunk along time when `chunk` is set.

    Chunking is the cache-blocked form for CPUs: the per-step quantities of a chunk
    (a few hundred steps: values, Jacobians, offsets) stay in cache between the
    linearisation and the scan instead of making $T \times D$ round trips to
    memory. Each chunk's recurrence starts from the new state leaving the previous
    chunk, so the result is exactly the unchunked iteration. Returns the new
    iterate and scalar summaries for the convergence test."""

    neuron: object
    discretisation: object
    recurrence: AbstractRecurrence
    method: str = eqx.field(static=True)
    damping: float | None = eqx.field(static=True)
    chunk: int = eqx.field(static=True)

    def block(self, x_in, x_prev, X, d, dt, valid, atol, rtol):
        """One chunk: `x_in` the new state entering it, `x_prev` the old one."""
        prev = jnp.concatenate([x_prev[None], X[:-1]], axis=0)
        values, jac = linearise(
            self.neuron, self.discretisation, prev, X, d, dt, self.method
        )
        factor = _diagonal_of(jac, prev)
        unstable = self.discretisation.unstable(self.neuron, prev, d, dt, factor)
        if self.damping is not None:
            jac = _clip_jacobian(jac, self.damping)
        # Newton step: x_t = J_t x_{t-1} + (Φ(x^k_{t-1}) - J_t x^k_{t-1}), started
        # from the known x_in (for the first chunk x_0, which makes x_1 = Φ(x_0)).
        dense = jac.ndim == prev.ndim + 1
        mv = (
            (lambda a, v: jnp.einsum("...ij,...j->...i", a, v))
            if dense
            else jnp.multiply
        )
        b = values - mv(jac, prev)
        b = b.at[0].add(mv(jac[0], x_in))
        X_new = self.recurrence(jac, b)
        delta = jnp.abs(X_new - X)
        v = valid[:, None]
        gain = jnp.sum(jnp.abs(jac), axis=-1) if dense else jnp.abs(jac)
        tol = atol + rtol * jnp.abs(X_new)
        ratio = jnp.where(delta == 0, 0, delta / jnp.where(tol > 0, tol, 1))
        ratio = jnp.where(tol > 0, ratio, jnp.where(delta == 0, 0, jnp.inf))
        summary = {
            "step": jnp.max(jnp.where(v, delta, 0)),
            "ratio_rel": jnp.max(jnp.where(v, ratio, 0)),
            "gain": jnp.max(jnp.where(v, gain, 0)),
            "finite": jnp.all(jnp.where(v, jnp.isfinite(X_new), True))
            & (jnp.max(jnp.where(v, jnp.abs(X_new), 0)) < overflow_bound(X_new.dtype)),
            "max_factor": jnp.max(jnp.where(v, jnp.abs(factor), 0)),
            "unstable": jnp.any(v & unstable),
        }
        return X_new, jax.lax.stop_gradient(summary)

    def layout(self, T: int) -> tuple[int, int]:
        """`(C, n)`: the chunk length and the number of chunks for `T` steps."""
        C = min(self.chunk, T)
        return C, -(-T // C)

    def pad(self, tree, T: int):
        """Pad the per-step arrays of `tree` to whole chunks (repeating the last
        step): done once per solve, outside the Newton loop, so that each sweep
        only reshapes (a free view) instead of copying every per-step array."""
        C, n = self.layout(T)
        return jax.tree.map(lambda a: _pad(a, n * C - T), tree)

    def __call__(self, x0, X, d, dt, valid, atol, rtol):
        """One sweep over padded arrays (`pad`): `X`, `d`, `dt` and the mask
        `valid` of the real steps have `n * C` steps; returns the new iterate in
        the same layout."""
        C = min(self.chunk, X.shape[0])
        n = X.shape[0] // C
        if n == 1:
            X_new, s = self.block(x0, x0, X, d, dt, valid, atol, rtol)
        else:
            # A loop over chunk offsets with dynamic slices along the time axis
            # (not a scan over a reshaped chunk axis): under `jax.vmap` the batch
            # axis then stays in front, where a scan would transpose every
            # per-step array to put its scanned axis first, each iteration.
            def chunk(a, i):
                return jax.lax.dynamic_slice_in_dim(a, i * C, C, axis=0)

            def body(i, carry):
                x_in, x_prev, s, X_new = carry
                Xc = chunk(X, i)
                dc, dtc, vc = jax.tree.map(lambda a: chunk(a, i), (d, dt, valid))
                Xc_new, sc = self.block(x_in, x_prev, Xc, dc, dtc, vc, atol, rtol)
                X_new = jax.lax.dynamic_update_slice_in_dim(X_new, Xc_new, i * C, 0)
                return Xc_new[-1], Xc[-1], _combine(s, sc), X_new

            init = (x0, x0, _neutral(X.dtype), jnp.zeros_like(X))
            _, _, s, X_new = jax.lax.fori_loop(0, n, body, init)
        real = jnp.finfo(X.dtype).dtype
        s = dict(
            s,
            ratio_abs=jnp.where(
                atol > 0, s["step"] / atol, jnp.where(s["step"] == 0, 0, jnp.inf)
            ),
        )
        return X_new, jax.tree.map(
            lambda a: a.astype(real) if a.dtype != bool else a, s
        )


def _neutral(dtype):
    real = jnp.finfo(dtype).dtype
    zero = jnp.zeros((), real)
    return {
        "step": zero,
        "ratio_rel": zero,
        "gain": zero,
        "finite": jnp.array(True),
        "max_factor": zero,
        "unstable": jnp.array(False),
    }


def _combine(a, b):
    out = {
        k: jnp.maximum(a[k], b[k].astype(a[k].dtype))
        for k in ("step", "ratio_rel", "gain", "max_factor")
    }
    out["finite"] = a["finite"] & b["finite"]
    out["unstable"] = a["unstable"] | b["unstable"]
    return out


class _Forward(eqx.Module):
    """The Newton loop, as the forward function of the fixed-point adjoint."""

    solver: ParallelNewton
    discretisation: object
    recurrence: AbstractRecurrence
    method: str = eqx.field(static=True)
    init: object

    def chunk_size(self, T: int, D: int) -> int:
        """The Newton sweep's chunk length: the solver's `chunk_size`; else, for the
        sequential (CPU) scan, chunks of about `_CHUNK_ELEMENTS` state entries
        (512 steps at D = 64), balanced so that the padding stays below one step
        per chunk, and no chunking when the whole sequence is that small; the
        whole sequence for the other recurrences."""
        if self.solver.chunk_size is not None:
            return self.solver.chunk_size
        if not isinstance(self.recurrence, SequentialScan):
            return T
        target = max(1, _CHUNK_ELEMENTS // max(D, 1))
        if T <= 2 * target:
            return T
        n = -(-T // target)
        return -(-T // n)

    def __call__(self, neuron, x0, inputs, dt):
        solver, discretisation = self.solver, self.discretisation
        d = drives(neuron, inputs)  # input-only terms, once per sequence
        T = inputs.shape[0]
        default_rtol, default_atol = default_tolerances(x0.dtype)
        rtol = default_rtol if solver.rtol is None else solver.rtol
        atol = default_atol if solver.atol is None else solver.atol
        max_iters = T if solver.max_iters is None else solver.max_iters
        real = jnp.finfo(x0.dtype).dtype
        sweep = _Sweep(
            neuron,
            discretisation,
            self.recurrence,
            self.method,
            solver.damping,
            self.chunk_size(T, x0.size),
        )

        # Padded to whole chunks once; the loop carries the padded iterate.
        d, dt = sweep.pad((d, dt), T)
        C, n = sweep.layout(T)
        valid = jnp.arange(n * C) < T

        def iterate(carry):
            k, X, _, _, last, _, _ = carry
            X_new, s = sweep(x0, X, d, dt, valid, atol, rtol)
            # The relative test is a certificate only where errors cannot grow
            # along the sequence: on a locally expanding recurrence (some
            # |∂Φ/∂x| > 1) two successive iterates can be huge, wrong and
            # relatively close, so there only the absolute test counts.
            expanding = s["gain"] > 1
            ratio = jnp.where(expanding, s["ratio_abs"], s["ratio_rel"])
            # Convergence without an extra pass: with θ = max|Δ_k| / max|Δ_{k-1}|
            # the observed contraction, the error of x^(k+1) is at most about
            # θ/(1-θ)|Δ_k| (Hairer & Wanner, Solving ODEs II, IV.8). Only used on a
            # contracting, non-expanding iteration.
            step = s["step"]
            contracting = jnp.isfinite(last) & (step < 0.5 * last) & ~expanding
            theta = jnp.where(contracting, step / jnp.where(contracting, last, 1), 1)
            converged = (ratio <= 1) | (
                contracting & (theta / (1 - theta) * ratio <= 1)
            )
            if not discretisation.implicit:
                # After k iterations the first k states of an explicit recurrence
                # are exact, so k >= T is convergence.
                converged = converged | (k + 1 >= T)
            return (
                k + 1,
                X_new,
                converged,
                s["finite"],
                step,
                s["max_factor"],
                s["unstable"],
            )

        def keep_going(carry):
            k, _, converged, finite, *_ = carry
            return (k < max_iters) & ~converged & finite

        X = jnp.zeros((T, x0.shape[0]), x0.dtype) if self.init is None else self.init
        X = sweep.pad(X, T)
        carry = (
            jnp.array(0),
            X,
            jnp.array(False),
            jnp.array(True),
            jnp.array(jnp.inf, real),
            jnp.array(jnp.nan, real),
            jnp.array(False),
        )
        k, X, converged, finite, delta, max_factor, unstable = jax.lax.while_loop(
            keep_going, iterate, carry
        )
        X = X[:T]
        not_converged = RESULTS.where(
            converged, RESULTS.successful, RESULTS.newton_max_iters_reached
        )
        result = outcome(finite, unstable, not_converged)
        stats = {
            "max_factor": max_factor,
            "unstable": unstable,
            "max_delta": delta,
            "fallback": jnp.array(False),
        }
        return X, (k, result, stats)
