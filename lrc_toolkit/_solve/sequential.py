import equinox as eqx
import jax
import jax.numpy as jnp

from .._solution import Solution
from ._adjoint import fixed_point_solve
from ._linearise import drives, misdeclared, shifted, step_fn
from ._outcome import all_finite, outcome
from .base import AbstractLiquidSolver
from .linear_scan import default_recurrence


class Sequential(AbstractLiquidSolver):
    r"""Evaluate the recurrence $x_t = \Phi(x_{t-1}, u_t; \Delta t_t)$ one step after
    another with `jax.lax.scan`: the reference evaluation, $O(TD)$ work and $O(T)$
    depth, and the fastest exact one on a CPU.

    Each step's factors $\partial\Phi_i/\partial x_i$ (the diagonal of the step
    Jacobian, from the discretisation's
    [`step_and_factor`][lrc_toolkit.AbstractDiscretisation.step_and_factor]: one
    JVP along ones for a diagonal neuron, one for `LTC` and `DenseLRC` under
    `Euler`) and $\partial f_i/\partial x_i$ are computed too, so that an
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
        # The step factors are computed inside the scan, with the step (the JVP
        # shares its primal work), as elementwise running maxima: for the LRC this
        # costs about 2x the bare scan, against about 3.6x for a second, vectorised
        # pass over all steps after it (figures and commands in docs/benchmarks.md;
        # the derivative's arithmetic is about the step's own, so an exact per-step
        # check cannot be free). An implicit step of a dense or block neuron is
        # A-stable: nothing to check.
        in_scan = self.check_stability and (diagonal or not implicit)
        # A neuron declared diagonal that is not: its factors would be row sums
        # (and the fixed-point gradients wrong). Named after the scan, from a
        # JVP probe on sampled steps.
        probe = self.check_stability and diagonal and not implicit
        d = drives(neuron, inputs)
        # The step's output shape and dtype, checked once at trace time.
        jax.eval_shape(phi, x0, jax.tree.map(lambda a: a[0], d), dt[0])

        def bare(x, d_and_dt):
            x_new = phi(x, *d_and_dt)
            return x_new, x_new

        def body(carry, d_and_dt):
            x, max_factor, unstable = carry
            d, h = d_and_dt
            x_new, factor = self.discretisation.step_and_factor(neuron, x, d, h)
            factor = jax.lax.stop_gradient(factor)
            # Elementwise running maxima (reduced once at the end): no per-step
            # reductions, so the check fuses with the step.
            max_factor = jnp.fmax(max_factor, jnp.abs(factor).astype(real))
            unstable = unstable | self.discretisation.unstable(neuron, x, d, h, factor)
            return (x_new, max_factor, unstable), x_new

        D = x0.shape[0]
        max_factor, unstable = jnp.full((D,), jnp.nan, real), jnp.zeros((D,), bool)
        if in_scan:
            init = (x0, max_factor, unstable)
            (_, max_factor, unstable), states = jax.lax.scan(body, init, (d, dt))
        else:  # the bare step alone in the loop: every extra carry costs per step
            states = jax.lax.scan(bare, x0, (d, dt))[1]
        if probe:
            prev = jax.lax.stop_gradient(shifted(x0, states))
            lie = misdeclared(
                neuron,
                self.discretisation,
                prev,
                states,
                *jax.lax.stop_gradient((d, dt)),
            )
        else:
            lie = None
        max_factor, unstable = jnp.max(max_factor), jnp.any(unstable)
        result = outcome(all_finite(states), unstable, misdeclared=lie)
        stats = {"max_factor": max_factor, "unstable": unstable}
        return states, (jnp.array(0), result, stats)
