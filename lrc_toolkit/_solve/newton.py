import math
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array

from .. import _blocks
from .._checks import check_choice, check_integer
from .._solution import RESULTS, Solution
from ._adjoint import fixed_point_solve
from ._linearise import drives, linearise, misdeclared, shifted
from ._outcome import outcome, overflow_bound
from .base import AbstractLiquidSolver
from .linear_scan import AbstractRecurrence, default_recurrence, SequentialScan


_METHODS = ("newton", "quasi", "dense")
# The default iteration limit of an implicit step on a sequence shorter than it.
_MIN_IMPLICIT_ITERS = 64


def default_tolerances(dtype) -> tuple[float, float]:
    """`(rtol, atol)` for the Newton convergence test at a given dtype."""
    if jnp.finfo(dtype).bits >= 64:
        return 1e-9, 1e-9
    return 1e-5, 1e-5


def _clip_jacobian(jac, radius, state):
    """Damped Newton: shrink each step's Jacobian to norm at most `radius`
    (entrywise for a diagonal one, the row-sum norm for a dense one, blockwise
    row sums for a block one). The products in the scan then stay below
    `radius`^L over any L steps, so the linear step can no longer overflow on a
    locally expanding recurrence, and after k iterations the first k states are
    still exact (that holds for any Jacobian approximation). Contracting steps
    (norm < `radius`) are left unchanged."""
    layout = _blocks.kind(jac, state)
    if layout == "diagonal":
        norm = jnp.abs(jac)
    else:  # dense (..., D, D) or blocks (..., N, k, k): one norm per matrix
        norm = jnp.max(jnp.sum(jnp.abs(jac), axis=-1), axis=-1)[..., None, None]
    tiny = jnp.finfo(norm.dtype).tiny
    return jac * jnp.minimum(1, radius / jnp.maximum(norm, tiny)).astype(jac.dtype)


# The automatic damping: exact Newton first; when an iteration diverges (states
# non-finite or overflowing) it restarts from the initial guess with every step's
# Jacobian clipped to norm 1, then 1/2, ... down to this radius. A converged damped
# iterate is then polished by at most `_POLISH` exact Newton iterations, kept only
# if they converge (else the damped answer, which passed the same test, stands).
_MIN_RADIUS = 1 / 16
_POLISH = 3


class ParallelNewton(AbstractLiquidSolver):
    r"""Evaluate the recurrence $x_t = \Phi(x_{t-1}, u_t)$ for all $t$ at once by
    Newton's method, each Newton step being a linear recurrence solved by an
    associative scan (the SSM view).

    At iterate $x^{(k)}$, with $J_t = \partial\Phi/\partial x\,(x^{(k)}_{t-1}, u_t)$,

    $$x^{(k+1)}_t = J_t\, x^{(k+1)}_{t-1} + \Phi(x^{(k)}_{t-1}, u_t) - J_t\, x^{(k)}_{t-1},$$

    solved in $O(\log T)$ depth. For a neuron with a diagonal Jacobian this is exact
    Newton at $O(TD)$ work per iteration; for a block-diagonal one
    (`jacobian_structure = "block"`, $k \times k$ blocks) exact Newton at
    $O(TDk^2)$ work and $O(TDk)$ memory, its Jacobian blocks from $k$ JVPs. For an explicit step, after $k$ iterations
    the first $k$ states are exact, so at most $T$ iterations are needed;
    contracting systems need a handful. For [`ImplicitEuler`][lrc_toolkit.ImplicitEuler]
    it is Newton on the residuals of the whole trajectory. Input-only terms
    ([`drive`][lrc_toolkit.AbstractLiquidNeuron.drive]) are computed once.

    Reverse-mode gradients are computed at the fixed point (one reverse linear
    recurrence and one vmapped VJP of $\Phi$), not through the loop; they flow to
    the neuron's parameters, `x0`, `inputs` and `dt`. Memory $O(TD)$.

    `Solution.stats`: `max_factor` (largest $|\partial\Phi_i/\partial x_i|$ of the last
    linearisation), `unstable`, `max_delta` (the last update's largest entry),
    `damping` (see `damping`) and `fallback` (whether the fallback solver ran).

    **Arguments:**

    - `method`: `"newton"` (exact Newton with the Jacobian structure the neuron
        declares, diagonal or block: the default for those neurons); `"dense"`
        (full-Jacobian Newton, DEER, $O(TD^3)$; the default for dense neurons);
        `"quasi"` (the diagonal of the Jacobian: cheap steps, more iterations).
    - `rtol`, `atol`: converged when $|x^{(k+1)} - x^{(k)}| \le$ `atol + rtol`
        $|x^{(k+1)}|$ everywhere (the relative part only on non-expanding steps), or,
        on a contracting iteration, when the error estimate
        $\theta/(1-\theta)\,|x^{(k+1)} - x^{(k)}|$ ($\theta$ the ratio of the last two
        updates) is within it. Defaults: $10^{-5}$ in float32, $10^{-9}$ in float64.
    - `max_iters`: the iteration limit; default $T$ (enough for an explicit step;
        at least 64 for an implicit one, whose short sequences need more),
        counted afresh after each restart of the automatic damping.
    - `damping`: a radius $\rho$: clip every step's Jacobian to norm $\le \rho$
        before the scan, so a locally expanding recurrence cannot overflow the
        linear step (contracting steps are unchanged). Default `None`: automatic,
        exact Newton until an iteration diverges (non-finite or overflowing
        states); then Newton restarts from the initial guess with $\rho = 1$,
        and halves $\rho$ (down to 1/16) at each further divergence. A converged
        damped answer is polished by up to three exact Newton iterations (kept
        if they converge, so the answer meets the tolerance as exact Newton's
        does). An iteration that stays finite is never damped (its iterates are
        those of exact Newton); FitzHugh–Nagumo at $\Delta t = 0.1$ converges
        with it, where exact Newton overflows in two iterations. `math.inf`:
        exact Newton, never damped. `stats["damping"]` is the radius of the
        damped iterations ($\infty$ when undamped).
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
        if self.method is not None:
            check_choice("method", self.method, _METHODS)
        if self.max_iters is not None:
            check_integer("max_iters", self.max_iters)
        for name in ("rtol", "atol"):
            value = getattr(self, name)
            if value is not None and not value >= 0:
                raise ValueError(f"`{name}` must be non-negative, got {value!r}.")
        if self.damping is not None and not self.damping > 0:
            raise ValueError(
                f"`damping` must be a positive radius, got {self.damping!r}."
            )
        if self.chunk_size is not None:
            check_integer("chunk_size", self.chunk_size)
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
        """The linearisation used: `"newton"` (diagonal), `"block"` (exact Newton
        on a block neuron), `"dense"` or `"quasi"`."""
        structure = neuron.jacobian_structure
        method = self.method
        if method is None:
            method = "dense" if structure == "dense" else "newton"
        if method == "newton" and structure == "dense":
            raise ValueError(
                f"method='newton' needs a neuron with a diagonal or block-diagonal "
                f"Jacobian, but {type(neuron).__name__} declares jacobian_structure="
                f"{structure!r}. Use `ParallelNewton(method='dense')` (exact Newton "
                "with full Jacobians) or `method='quasi'` (their diagonal)."
            )
        if method == "newton" and structure == "block":
            _blocks.check_block_size(neuron)
            return "block"
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
    damped: bool = eqx.field(static=True)
    chunk: int = eqx.field(static=True)

    def block(self, x_in, x_prev, X, d, dt, valid, atol, rtol, radius):
        """One chunk: `x_in` the new state entering it, `x_prev` the old one;
        `radius` the damping radius (infinite: exact Newton)."""
        prev = jnp.concatenate([x_prev[None], X[:-1]], axis=0)
        values, jac = linearise(
            self.neuron, self.discretisation, prev, X, d, dt, self.method
        )
        factor = _blocks.diagonal(jac, prev)
        unstable = self.discretisation.unstable(self.neuron, prev, d, dt, factor)
        # The gain of the true linearisation, before any damping: clipping hides an
        # expanding step from the convergence test, not from the errors.
        gain = _blocks.row_sums(jac, prev)
        if self.damped:
            jac = _clip_jacobian(jac, radius, prev)  # (by 1 for an infinite radius)
        # Newton step: x_t = J_t x_{t-1} + (Φ(x^k_{t-1}) - J_t x^k_{t-1}), started
        # from the known x_in (for the first chunk x_0, which makes x_1 = Φ(x_0)).
        b = values - _blocks.matvec(jac, prev)
        b = b.at[0].add(_blocks.matvec(jac[0], x_in))
        X_new = self.recurrence(jac, b)
        delta = jnp.abs(X_new - X)
        v = valid[:, None]
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

    def __call__(self, x0, X, d, dt, valid, atol, rtol, radius):
        """One sweep over padded arrays (`pad`): `X`, `d`, `dt` and the mask
        `valid` of the real steps have `n * C` steps; returns the new iterate in
        the same layout."""
        C = min(self.chunk, X.shape[0])
        n = X.shape[0] // C
        if n == 1:
            X_new, s = self.block(x0, x0, X, d, dt, valid, atol, rtol, radius)
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
                Xc_new, sc = self.block(
                    x_in, x_prev, Xc, dc, dtc, vc, atol, rtol, radius
                )
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
        if solver.max_iters is not None:
            max_iters = solver.max_iters
        elif discretisation.implicit:
            # T iterations make an explicit recurrence exact; an implicit step's
            # states are roots, which a short sequence does not bound.
            max_iters = max(T, _MIN_IMPLICIT_ITERS)
        else:
            max_iters = T
        real = jnp.finfo(x0.dtype).dtype
        auto = solver.damping is None
        radius0 = math.inf if auto else solver.damping

        def make_sweep(damped):
            return _Sweep(
                neuron,
                discretisation,
                self.recurrence,
                self.method,
                damped,
                self.chunk_size(T, x0.size),
            )

        sweep = make_sweep(math.isfinite(radius0))
        # Padded to whole chunks once; the loop carries the padded iterate.
        d, dt = sweep.pad((d, dt), T)
        C, n = sweep.layout(T)
        valid = jnp.arange(n * C) < T
        X_init = (
            jnp.zeros((T, x0.shape[0]), x0.dtype) if self.init is None else self.init
        )
        X_init = sweep.pad(X_init, T)

        def newton(sweep, c: _Carry) -> _Carry:
            """One iteration and its convergence test."""
            # Polishing a damped answer is exact Newton.
            radius = jnp.where(c.polish, jnp.inf, c.radius).astype(real)
            X_new, s = sweep(x0, c.X, d, dt, valid, atol, rtol, radius)
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
            contracting = jnp.isfinite(c.last) & (step < 0.5 * c.last) & ~expanding
            theta = jnp.where(contracting, step / jnp.where(contracting, c.last, 1), 1)
            converged = (ratio <= 1) | (
                contracting & (theta / (1 - theta) * ratio <= 1)
            )
            if not discretisation.implicit:
                # After k iterations (since the last restart) the first k states
                # of an explicit recurrence are exact, so k >= T is convergence.
                converged = converged | (c.phase + 1 >= T)
            return _Carry(
                k=c.k + 1,
                phase=c.phase + 1,
                X=X_new,
                converged=converged,
                finite=s["finite"],
                last=step.astype(real),
                max_factor=s["max_factor"],
                unstable=s["unstable"],
                radius=c.radius,
                polish=c.polish,
                keep=c.keep,
            )

        def damped_newton(sweep, c: _Carry) -> _Carry:
            """`newton` with the restarts and the polish of the automatic damping."""
            new = newton(sweep, c)
            # A damped iteration diverged: restart more damped from the initial
            # guess.
            restart = ~new.finite & ~c.polish & (c.radius > _MIN_RADIUS)
            restarted = eqx.tree_at(
                lambda n: (n.phase, n.X, n.finite, n.last, n.radius),
                new,
                (
                    jnp.zeros_like(c.phase),
                    X_init,
                    jnp.array(True),
                    jnp.array(jnp.inf, real),
                    (c.radius / 2).astype(real),
                ),
            )
            # A damped iterate converged: polish it with exact Newton, keeping it.
            start = ~c.polish & new.converged & new.finite
            polishing = eqx.tree_at(
                lambda n: (n.phase, n.converged, n.polish, n.keep),
                new,
                (jnp.zeros_like(c.phase), jnp.array(False), jnp.array(True), new.X),
            )
            # The polish diverged or does not converge within _POLISH iterations:
            # the damped answer stands.
            give_up = (
                c.polish & ~new.converged & (~new.finite | (c.phase + 1 >= _POLISH))
            )
            reverted = eqx.tree_at(
                lambda n: (n.X, n.converged, n.finite, n.last, n.polish),
                new,
                (c.keep, jnp.array(True), jnp.array(True), c.last, jnp.array(False)),
            )
            out = new
            for cond, alt in (
                (restart, restarted),
                (start, polishing),
                (give_up, reverted),
            ):
                out = jax.tree.map(lambda a, b: jnp.where(cond, b, a), out, alt)
            return out

        def keep_going(c: _Carry):
            under_limit = (c.phase if solver.max_iters is None else c.k) < max_iters
            return under_limit & ~c.converged & c.finite

        def carry(X, radius, converged):
            return _Carry(
                k=jnp.array(0),
                phase=jnp.array(0),
                X=X,
                converged=converged,
                finite=jnp.array(True),
                last=jnp.array(jnp.inf, real),
                max_factor=jnp.array(jnp.nan, real),
                unstable=jnp.array(False),
                radius=jnp.asarray(radius, real),
                polish=jnp.array(False),
                keep=jnp.zeros((0,), x0.dtype),
            )

        # Newton as configured: exact, or damped with `damping`. (With the
        # automatic damping this first loop is the very program of exact Newton, so
        # that where it stays finite its iterates round as exact Newton's do.)
        c = jax.lax.while_loop(
            keep_going,
            lambda c: newton(sweep, c),
            carry(X_init, radius0, jnp.array(False)),
        )
        if auto:
            # Where exact Newton diverged: damped Newton from the initial guess.
            diverged = ~c.finite
            start = eqx.tree_at(
                lambda n: (n.k, n.keep), carry(X_init, 1.0, ~diverged), (c.k, X_init)
            )
            damped = jax.lax.while_loop(
                keep_going, lambda c: damped_newton(make_sweep(True), c), start
            )
            # Stopped by `max_iters` while polishing: the damped answer stands.
            unfinished = damped.polish & ~damped.converged
            damped = eqx.tree_at(
                lambda n: (n.X, n.converged, n.keep),
                damped,
                (
                    jnp.where(unfinished, damped.keep, damped.X),
                    damped.converged | unfinished,
                    c.keep,
                ),
            )
            c = jax.tree.map(lambda a, b: jnp.where(diverged, b, a), c, damped)
        X = c.X[:T]
        # The declared structure, on the forward pass too (sampled steps): a neuron
        # declared diagonal or block-diagonal that is not is named here, not only
        # by its gradient.
        real_steps = jax.tree.map(lambda a: a[:T], (d, dt))
        lie = None
        if self.method in ("block", "newton"):
            lie = misdeclared(neuron, discretisation, shifted(x0, X), X, *real_steps)
        not_converged = RESULTS.where(
            c.converged, RESULTS.successful, RESULTS.newton_max_iters_reached
        )
        result = outcome(c.finite, c.unstable, not_converged, misdeclared=lie)
        stats = {
            "max_factor": c.max_factor,
            "unstable": c.unstable,
            "max_delta": c.last,
            "damping": c.radius,
            "fallback": jnp.array(False),
        }
        return X, (c.k, result, stats)


class _Carry(eqx.Module):
    """The state of the Newton loop."""

    k: Array  # iterations so far
    phase: Array  # iterations since the last restart of the automatic damping
    X: Array  # the iterate (padded to whole chunks)
    converged: Array
    finite: Array
    last: Array  # the last update's largest entry
    max_factor: Array
    unstable: Array
    radius: Array  # the damping radius (inf: exact Newton)
    polish: Array  # exact Newton iterations from a converged damped answer
    keep: Array  # that damped answer
