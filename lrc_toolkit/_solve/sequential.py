import equinox as eqx
import jax
import jax.numpy as jnp

from .._blocks import block_jacobian, block_size
from .._solution import Solution
from ._adjoint import fixed_point_solve
from ._common import all_finite, drives, outcome, shifted, step_fn
from .base import AbstractLiquidSolver
from .linear_scan import default_recurrence


class Sequential(AbstractLiquidSolver):
    r"""Evaluate the recurrence $x_t = \Phi(x_{t-1}, u_t; \Delta t_t)$ one step after
    another with `jax.lax.scan`: the reference evaluation, $O(TD)$ work and $O(T)$
    depth, and the fastest exact one on a CPU.

    For a diagonal neuron each step also computes, by one JVP along ones, the step
    factor $\partial\Phi_i/\partial x_i$ and $\partial f_i/\partial x_i$, so that an
    unstable explicit step is reported (`RESULTS.unstable_step`) and
    `stats["max_factor"]` is the largest $|\partial\Phi_i/\partial x_i|$ (for a
    dense neuron the diagonal of the step Jacobian, $D$ JVPs per step).

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
        probe = self.check_stability and neuron.jacobian_structure == "diagonal"
        # For an explicit step the factors are computed after the scan, for all
        # steps at once (one vectorised JVP along ones, the same arithmetic as
        # inside the scan): the scan body stays the bare step, which on a CPU is
        # several times cheaper than carrying a JVP and running maxima through
        # every iteration. An implicit step (a root find per step) is probed
        # inside the scan, so its root finds run once.
        in_scan = probe and self.discretisation.implicit
        d = drives(neuron, inputs)

        def body(carry, d_and_dt):
            x, max_factor, unstable = carry
            d, h = d_and_dt
            if not in_scan:
                x_new = phi(x, d, h)
                return (x_new, max_factor, unstable), x_new
            x_new, factor = jax.jvp(lambda p: phi(p, d, h), (x,), (jnp.ones_like(x),))
            factor = jax.lax.stop_gradient(factor)
            # Elementwise running maxima (reduced once at the end): no per-step
            # reductions, so the check fuses with the step.
            max_factor = jnp.fmax(max_factor, jnp.abs(factor).astype(real))
            unstable = unstable | self.discretisation.unstable(neuron, x, d, h, factor)
            return (x_new, max_factor, unstable), x_new

        D = x0.shape[0]
        init = (x0, jnp.full((D,), jnp.nan, real), jnp.zeros((D,), bool))
        (_, max_factor, unstable), states = jax.lax.scan(body, init, (d, dt))
        if probe and not in_scan:
            prev = jax.lax.stop_gradient(shifted(x0, states))
            d_, dt_ = jax.lax.stop_gradient((d, dt))
            factor = jax.jvp(
                lambda p: jax.vmap(phi)(p, d_, dt_), (prev,), (jnp.ones_like(prev),)
            )[1]
            factor = jax.lax.stop_gradient(factor)
            # As the running maxima: NaN steps skipped per component (fmax).
            max_factor = jnp.nanmax(jnp.abs(factor).astype(real), axis=0)
            unstable = self.discretisation.unstable(neuron, prev, d_, dt_, factor)
        if (
            self.check_stability
            and neuron.jacobian_structure != "diagonal"
            and not self.discretisation.implicit
        ):
            # A dense neuron: the diagonal of each step's Jacobian (D JVPs per step,
            # vectorised over the steps), so that the same fault gives the same
            # outcome as in `ParallelNewton`, whose dense linearisation has it.
            prev = jax.lax.stop_gradient(shifted(x0, states))
            d_, dt_ = jax.lax.stop_gradient((d, dt))
            if neuron.jacobian_structure == "block":  # k JVPs, no D x D array
                step_all = lambda p: jax.vmap(phi)(p, d_, dt_)
                _, jac = block_jacobian(step_all, prev, block_size(neuron))
            else:
                jac = jax.vmap(jax.jacfwd(phi, holomorphic=jnp.iscomplexobj(prev)))(
                    prev, d_, dt_
                )
            factor = jnp.diagonal(jax.lax.stop_gradient(jac), axis1=-2, axis2=-1)
            factor = factor.reshape(prev.shape)
            max_factor = jnp.nanmax(jnp.abs(factor).astype(real), axis=0)
            unstable = self.discretisation.unstable(neuron, prev, d_, dt_, factor)
        max_factor, unstable = jnp.max(max_factor), jnp.any(unstable)
        result = outcome(all_finite(states), unstable)
        stats = {"max_factor": max_factor, "unstable": unstable}
        return states, (jnp.array(0), result, stats)
