import equinox as eqx
import jax
import jax.numpy as jnp

from .._solution import Solution
from ._adjoint import fixed_point_solve
from ._linearise import check_after_scan, drives, misdeclared, shifted, step_fn
from ._outcome import all_finite, outcome
from .base import AbstractLiquidSolver
from .linear_scan import default_recurrence


class Sequential(AbstractLiquidSolver):
    r"""Evaluate the recurrence $x_t = \Phi(x_{t-1}, u_t; \Delta t_t)$ one step after
    another with `jax.lax.scan`: the reference evaluation, $O(TD)$ work and $O(T)$
    depth, and the fastest exact one on a CPU.

    Each step's factors $\partial\Phi_i/\partial x_i$ (the diagonal of the step
    Jacobian, from the discretisation's
    [`step_and_check`][lrc_toolkit.AbstractDiscretisation.step_and_check]: one
    JVP along ones for a diagonal neuron, after the scan for all steps at once
    when the step is explicit; for `LTC` and `DenseLRC` the derivatives of their
    $D$ self-synapses) and $\partial f_i/\partial x_i$ are computed too, so that an
    unstable explicit step is reported (`RESULTS.unstable_step`) and
    `stats["max_factor"]` is the largest $|\partial\Phi_i/\partial x_i|$.

    **Arguments:**

    - `autodiff`: how gradients are computed. `False` (default): at the fixed point,
        as for [`ParallelNewton`][lrc_toolkit.ParallelNewton] (one reverse linear
        recurrence and one vmapped VJP of $\Phi$; memory $O(TD)$). `True`: reverse-mode
        autodiff through the `lax.scan` (stores every step's residuals).
    - `check_stability`: compute the step factors (default `True`); `False` skips
        the JVPs and reports `max_factor` as NaN.
    """

    autodiff: bool = eqx.field(default=False, static=True)
    check_stability: bool = eqx.field(default=True, static=True)

    def run(self, neuron, x0, inputs, dt, ts, discretisation, init):
        forward = _Scan(discretisation, self.check_stability)
        if self.autodiff:
            states, (k, result, stats) = forward(neuron, x0, inputs, dt)
        else:
            states, (k, result, stats) = fixed_point_solve(
                (neuron, x0, inputs, dt), forward, discretisation, default_recurrence()
            )
        return Solution(states=states, result=result, iterations=k, stats=stats)


class _Scan(eqx.Module):
    discretisation: object
    check_stability: bool = eqx.field(static=True)

    def __call__(self, neuron, x0, inputs, dt):
        phi = step_fn(neuron, self.discretisation)
        real = jnp.finfo(x0.dtype).dtype
        diagonal = neuron.jacobian_structure == "diagonal"
        implicit = self.discretisation.implicit
        # Where the step factors are computed. For a diagonal neuron's explicit step
        # after the scan, for all steps at once: XLA compiles the step with its
        # derivative and running maxima into several kernels per iteration (the
        # transcendental terms are shared by three outputs), where the bare step is
        # one, so on a CPU the vectorised pass costs less (LRC, D = 64, T = 17 984:
        # 1.2-1.9x the bare scan against 2.3-2.9x in the scan, docs/benchmarks.md),
        # and on an accelerator it is one parallel kernel instead of per-step work.
        # For its implicit step inside the scan, so that the root finds run once.
        # For a dense or block neuron's explicit step inside the scan: vectorised
        # over all steps its per-step (D, D) intermediates would not stay in cache.
        # An implicit step of a dense or block neuron is A-stable: nothing to check.
        after_scan = self.check_stability and diagonal and not implicit
        in_scan = self.check_stability and diagonal == implicit
        d = drives(neuron, inputs)
        # The step's output shape and dtype, checked once at trace time.
        jax.eval_shape(phi, x0, jax.tree.map(lambda a: a[0], d), dt[0])

        def bare(x, d_and_dt):
            x_new = phi(x, *d_and_dt)
            return x_new, x_new

        def body(carry, d_and_dt):
            x, max_factor, unstable = carry
            d, h = d_and_dt
            x_new, factor, flag = self.discretisation.step_and_check(neuron, x, d, h)
            factor = jax.lax.stop_gradient(factor)
            # Elementwise running maxima, reduced once at the end: no per-step
            # reductions.
            max_factor = jnp.fmax(max_factor, jnp.abs(factor).astype(real))
            unstable = unstable | flag
            return (x_new, max_factor, unstable), x_new

        D = x0.shape[0]
        max_factor, unstable = jnp.full((D,), jnp.nan, real), jnp.zeros((D,), bool)
        if in_scan:
            init = (x0, max_factor, unstable)
            (_, max_factor, unstable), states = jax.lax.scan(body, init, (d, dt))
        else:  # the bare step alone in the loop: every extra carry costs per step
            states = jax.lax.scan(bare, x0, (d, dt))[1]
        if after_scan:
            prev = jax.lax.stop_gradient(shifted(x0, states))
            d_, dt_ = jax.lax.stop_gradient((d, dt))
            max_factor, unstable = check_after_scan(
                neuron, self.discretisation, prev, d_, dt_
            )
            # A neuron declared diagonal that is not: its factors would be row sums
            # (and the fixed-point gradients wrong). Named from a JVP probe on
            # sampled steps.
            lie = misdeclared(neuron, self.discretisation, prev, states, d_, dt_)
        else:
            lie = None
        max_factor, unstable = jnp.max(max_factor), jnp.any(unstable)
        result = outcome(all_finite(states), unstable, misdeclared=lie)
        stats = {"max_factor": max_factor, "unstable": unstable}
        return states, (jnp.array(0), result, stats)
