from typing import Literal

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp

from .._checks import check_choice
from .._discretise import DiffraxStep
from .._solution import RESULTS, Solution
from ._linearise import check_after_scan, drives, shifted
from ._outcome import all_finite, outcome
from .base import AbstractLiquidSolver


_INTERPOLATIONS = ("piecewise_constant", "linear", "cubic")


class ODE(AbstractLiquidSolver):
    r"""Integrate $\frac{dx}{dt} = f(x, u(t))$ as an ODE with Diffrax: the biological,
    continuous-time view.

    The inputs are samples $u(t_k)$ at the time stamps `ts` of
    [`solve`][lrc_toolkit.solve] (default $t_k = \sum_{j \le k} \Delta t_j$, the
    initial state at $t_0 = t_1 - \Delta t_1$), interpolated in time:

    - `"piecewise_constant"` holds `inputs[k]` on the interval $(t_{k-1}, t_k]$ that
        ends at $t_k$. With `diffrax.Euler()` and one step per interval this
        reproduces [`Sequential`][lrc_toolkit.Sequential] with explicit Euler (and
        `diffrax.ImplicitEuler()` reproduces [`ImplicitEuler`][lrc_toolkit.ImplicitEuler]).
        The ODE is integrated interval by interval, so that no solver stage
        straddles a jump of the input; the neuron's `drive` is computed once per
        sample.
    - `"linear"`: `diffrax.LinearInterpolation` through $(t_0, u_1), (t_1, u_1),
        (t_2, u_2), \dots$;
    - `"cubic"`: `diffrax.CubicInterpolation` with backward Hermite coefficients.

    With fixed steps and an explicit solver, the stability of the step is checked as
    for the discrete solvers (`RESULTS.unstable_step`, `stats["max_factor"]`); a
    non-finite trajectory is `RESULTS.nonfinite` in every case.

    **Arguments:**

    - `solver`: any Diffrax solver (default `diffrax.Tsit5()`); implicit ones such
        as `diffrax.ImplicitEuler()` or `diffrax.Kvaerno5()` for stiff neurons.
    - `stepsize_controller`: default: one step per sample interval (or constant
        steps of at most `dt0`). For adaptive stepping pass e.g.
        `diffrax.PIDController(rtol=1e-6, atol=1e-6)`.
    - `dt0`: the initial (or constant) step size.
    - `interpolation`: see above.
    - `max_steps`, `adjoint`: passed to `diffrax.diffeqsolve`.
    """

    solver: diffrax.AbstractSolver = diffrax.Tsit5()
    stepsize_controller: diffrax.AbstractStepSizeController | None = None
    dt0: float | None = None
    interpolation: Literal["piecewise_constant", "linear", "cubic"] = eqx.field(
        default="piecewise_constant", static=True
    )
    max_steps: int | None = eqx.field(default=4096, static=True)
    adjoint: diffrax.AbstractAdjoint = diffrax.RecursiveCheckpointAdjoint()

    def __check_init__(self):
        if not isinstance(self.solver, diffrax.AbstractSolver):
            raise TypeError(
                "`solver` must be a Diffrax solver such as `diffrax.Tsit5()`, got "
                f"{type(self.solver).__name__}."
            )
        check_choice("interpolation", self.interpolation, _INTERPOLATIONS)
        if self.stepsize_controller is not None and not isinstance(
            self.stepsize_controller, diffrax.AbstractStepSizeController
        ):
            raise TypeError(
                "`stepsize_controller` must be a Diffrax step-size controller such as "
                "`diffrax.PIDController(rtol=1e-6, atol=1e-6)`, got "
                f"{type(self.stepsize_controller).__name__}."
            )

    def _fixed_steps(self) -> bool:
        return self.stepsize_controller is None or isinstance(
            self.stepsize_controller, diffrax.ConstantStepSize | diffrax.StepTo
        )

    def run(self, neuron, x0, inputs, dt, ts, discretisation, init):
        ts = eqx.error_if(
            ts, jnp.any(jnp.diff(ts) <= 0), "`ts` must be strictly increasing."
        )
        t0 = ts[0] - dt[0]
        grid = jnp.concatenate([jnp.reshape(t0, (1,)), ts])
        if self.interpolation == "piecewise_constant":
            states, result, stats = self._piecewise_constant(neuron, grid, inputs, x0)
        else:
            states, result, stats = self._interpolated(neuron, grid, inputs, x0)
        finite = all_finite(states)
        unstable = jnp.array(False)
        max_factor = jnp.array(jnp.nan, jnp.finfo(x0.dtype).dtype)
        explicit = not isinstance(self.solver, diffrax.AbstractImplicitSolver)
        if self._fixed_steps() and explicit and neuron.jacobian_structure == "diagonal":
            # The factors of the steps the solver took (one per interval, or
            # sub-steps of at most dt0), with the input held at the sample.
            h = dt if self.dt0 is None else jnp.minimum(dt, self.dt0)
            step = DiffraxStep(self.solver)
            prev, d = shifted(x0, states), drives(neuron, inputs)
            max_factor, unstable = check_after_scan(neuron, step, prev, d, h)
        stats = dict(stats, max_factor=max_factor, unstable=unstable)
        result = outcome(finite, unstable, result)
        return Solution(
            states=states, ts=ts, result=result, iterations=jnp.array(0), stats=stats
        )

    def _piecewise_constant(self, neuron, grid, inputs, x0):
        controller = self.stepsize_controller
        if controller is None:
            controller = diffrax.ConstantStepSize()
        term = diffrax.ODETerm(lambda t, x, drive: neuron.driven_vector_field(x, drive))
        dt0 = self.dt0

        def interval(x, data):
            ta, tb, drive = data
            sol = diffrax.diffeqsolve(
                term,
                self.solver,
                ta,
                tb,
                tb - ta if dt0 is None else jnp.minimum(dt0, tb - ta),
                x,
                args=drive,
                saveat=diffrax.SaveAt(t1=True),
                stepsize_controller=controller,
                max_steps=self.max_steps,
                adjoint=self.adjoint,
                throw=False,
            )
            x = sol.ys[-1]
            return x, (x, sol.result, sol.stats["num_steps"])

        _, (states, results, num_steps) = jax.lax.scan(
            interval, x0, (grid[:-1], grid[1:], drives(neuron, inputs))
        )
        failed = results != diffrax.RESULTS.successful
        first = jnp.argmax(failed)
        result = RESULTS.promote(jax.tree.map(lambda r: r[first], results))
        stats = {"num_steps": jnp.sum(num_steps), "num_steps_per_interval": num_steps}
        return states, result, stats

    def _interpolated(self, neuron, grid, inputs, x0):
        padded = jnp.concatenate([inputs[:1], inputs], axis=0)
        if self.interpolation == "linear":
            path = diffrax.LinearInterpolation(grid, padded)
        else:
            path = diffrax.CubicInterpolation(
                grid, diffrax.backward_hermite_coefficients(grid, padded)
            )
        controller, dt0 = self.stepsize_controller, self.dt0
        if controller is None:
            controller = (
                diffrax.StepTo(grid) if dt0 is None else diffrax.ConstantStepSize()
            )
        elif dt0 is None and isinstance(controller, diffrax.PIDController):
            dt0 = grid[1] - grid[0]
        term = diffrax.ODETerm(
            lambda t, x, args: neuron.vector_field(x, path.evaluate(t))
        )
        sol = diffrax.diffeqsolve(
            term,
            self.solver,
            grid[0],
            grid[-1],
            dt0,
            x0,
            saveat=diffrax.SaveAt(ts=grid[1:]),
            stepsize_controller=controller,
            max_steps=self.max_steps,
            adjoint=self.adjoint,
            throw=False,
        )
        return sol.ys, RESULTS.promote(sol.result), dict(sol.stats)
