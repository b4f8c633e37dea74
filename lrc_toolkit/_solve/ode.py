
import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import ArrayLike

from .._neurons.base import AbstractLiquidNeuron
from .._solution import RESULTS, Solution
from ._common import drives, validate


_INTERPOLATIONS = ("piecewise_constant", "linear", "cubic")


def _default_t0(ts):
    return ts[0] - (ts[1] - ts[0]) if ts.shape[0] > 1 else ts[0] - 1


def solve_ode(
    neuron: AbstractLiquidNeuron,
    ts: ArrayLike,
    inputs: ArrayLike,
    x0: ArrayLike,
    *,
    solver: diffrax.AbstractSolver = diffrax.Tsit5(),
    stepsize_controller: diffrax.AbstractStepSizeController | None = None,
    dt0: ArrayLike | None = None,
    t0: ArrayLike | None = None,
    interpolation: str = "piecewise_constant",
    max_steps: int | None = 4096,
    adjoint: diffrax.AbstractAdjoint = diffrax.RecursiveCheckpointAdjoint(),
    throw: bool = True,
) -> Solution:
    r"""Integrate $\frac{dx}{dt} = f(x, u(t))$ as an ODE with Diffrax: the biological,
    continuous-time view.

    The inputs are samples $u(t_k)$ at the times `ts`, interpolated in time:

    - `"piecewise_constant"` holds `inputs[k]` on the interval $(t_{k-1}, t_k]$ that
        ends at `ts[k]`. With `diffrax.Euler()` and one step per interval this
        reproduces [`solve_sequential`][lrc_toolkit.solve_sequential] with
        $\Delta t_k = t_k - t_{k-1}$. The neuron's `drive` is computed once per
        sample.
    - `"linear"`: `diffrax.LinearInterpolation`;
    - `"cubic"`: `diffrax.CubicInterpolation` with backward Hermite coefficients.

    **Arguments:**

    - `neuron`: an [`AbstractLiquidNeuron`][lrc_toolkit.AbstractLiquidNeuron].
    - `ts`: strictly increasing sample times, shape `(T,)`; the states are saved here.
    - `inputs`: the samples, shape `(T, P)`.
    - `x0`: the state at time `t0`, shape `(D,)`.
    - `solver`: any Diffrax solver (default `Tsit5()`); implicit ones such as
        `diffrax.Kvaerno5()` for stiff regimes.
    - `stepsize_controller`: default: one step from sample to sample, unless `dt0`
        is given (then constant steps of at most `dt0`). For adaptive stepping pass
        e.g. `diffrax.PIDController(rtol=1e-6, atol=1e-6)`. With piecewise-constant
        inputs the ODE is integrated interval by interval (restarting at each jump
        of the input), so that no solver stage straddles a discontinuity.
    - `dt0`: the initial (or constant) step size.
    - `t0`: the start time; default one sample interval before `ts[0]`.
    - `interpolation`: see above.
    - `max_steps`, `adjoint`, `throw`: passed to `diffrax.diffeqsolve`.

    **Returns:**

    A [`Solution`][lrc_toolkit.Solution] with `states` at `ts`, `ts`, the Diffrax
    `result` and `stats`.
    """
    x0, inputs, _ = validate(neuron, x0, inputs)
    ts = jnp.asarray(ts)
    if not jnp.issubdtype(ts.dtype, jnp.floating):
        ts = ts.astype(jnp.finfo(x0.dtype).dtype)
    if ts.ndim != 1 or ts.shape[0] != inputs.shape[0]:
        raise ValueError(
            f"`ts` must have one time per input sample: shape ({inputs.shape[0]},) for "
            f"inputs of shape {inputs.shape}; got shape {ts.shape}."
        )
    if interpolation not in _INTERPOLATIONS:
        raise ValueError(
            f"`interpolation` must be one of {_INTERPOLATIONS}, got {interpolation!r}."
        )
    if not isinstance(solver, diffrax.AbstractSolver):
        raise TypeError(
            f"`solver` must be a diffrax solver, got {type(solver).__name__}."
        )
    ts = eqx.error_if(
        ts, jnp.any(jnp.diff(ts) <= 0), "`ts` must be strictly increasing."
    )
    t0 = _default_t0(ts) if t0 is None else jnp.asarray(t0, ts.dtype)
    ts = eqx.error_if(ts, ts[0] <= t0, "`t0` must lie before `ts[0]`.")
    grid = jnp.concatenate([jnp.reshape(t0, (1,)), ts])

    if interpolation == "piecewise_constant":
        return _solve_piecewise_constant(
            neuron,
            grid,
            drives(neuron, inputs),
            x0,
            solver,
            stepsize_controller,
            dt0,
            max_steps,
            adjoint,
            throw,
        )
    padded = jnp.concatenate([inputs[:1], inputs], axis=0)
    if interpolation == "linear":
        path = diffrax.LinearInterpolation(grid, padded)
    else:
        path = diffrax.CubicInterpolation(
            grid, diffrax.backward_hermite_coefficients(grid, padded)
        )
    if stepsize_controller is None:
        stepsize_controller = (
            diffrax.StepTo(grid) if dt0 is None else diffrax.ConstantStepSize()
        )
    elif dt0 is None and isinstance(stepsize_controller, diffrax.PIDController):
        dt0 = ts[0] - t0
    term = diffrax.ODETerm(lambda t, x, args: neuron.vector_field(x, path.evaluate(t)))
    sol = diffrax.diffeqsolve(
        term,
        solver,
        t0,
        ts[-1],
        dt0,
        x0,
        saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=stepsize_controller,
        max_steps=max_steps,
        adjoint=adjoint,
        throw=throw,
    )
    return Solution(
        states=sol.ys, ts=ts, result=RESULTS.promote(sol.result), stats=dict(sol.stats)
    )


def _solve_piecewise_constant(
    neuron, grid, d, x0, solver, controller, dt0, max_steps, adjoint, throw
):
    """Inputs held constant on each interval $(t_{k-1}, t_k]$: integrate interval by
    interval, so that no Runge–Kutta stage ever straddles a jump of the input."""
    if controller is None:
        controller = diffrax.ConstantStepSize()
    term = diffrax.ODETerm(lambda t, x, drive: neuron.driven_vector_field(x, drive))

    def interval(x, data):
        ta, tb, drive = data
        sol = diffrax.diffeqsolve(
            term,
            solver,
            ta,
            tb,
            tb - ta if dt0 is None else jnp.minimum(dt0, tb - ta),
            x,
            args=drive,
            saveat=diffrax.SaveAt(t1=True),
            stepsize_controller=controller,
            max_steps=max_steps,
            adjoint=adjoint,
            throw=throw,
        )
        x = sol.ys[-1]
        return x, (x, sol.result, sol.stats["num_steps"])

    _, (states, results, num_steps) = jax.lax.scan(
        interval, x0, (grid[:-1], grid[1:], d)
    )
    failed = results != diffrax.RESULTS.successful
    first = jnp.argmax(failed)
    result = RESULTS.promote(jax.tree.map(lambda r: r[first], results))
    stats = {"num_steps": jnp.sum(num_steps), "num_steps_per_interval": num_steps}
    return Solution(states=states, ts=grid[1:], result=result, stats=stats)
