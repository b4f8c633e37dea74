import equinox as eqx
import jax.numpy as jnp
from jaxtyping import ArrayLike

from .._discretise import AbstractDiscretisation, Euler
from .._neurons.base import AbstractLiquidNeuron
from .._solution import Solution
from ._validate import as_arrays, as_steps, check_discretisation, checked
from .auto import Auto
from .base import AbstractLiquidSolver
from .newton import ParallelNewton
from .sequential import Sequential


def steps_from_times(ts, single):
    """The steps $\\Delta t_k = t_k - t_{k-1}$ of time stamps `ts` (shape `(T,)`), the
    first repeating the second (`single` when there is only one stamp)."""
    first = ts[1] - ts[0] if ts.shape[0] > 1 else jnp.asarray(single, ts.dtype)
    return jnp.concatenate([first[None], jnp.diff(ts)])


def time_grid(dt, ts, T, dtype):
    """`(dt, ts)` of shape `(T,)` each from whichever was given: the steps are the
    differences of the time stamps (the first one repeating the second interval, so
    that $x_0$ sits at $t_0 = t_1 - (t_2 - t_1)$), the time stamps the cumulative sums
    of the steps ($x_0$ at $t = 0$)."""
    if ts is None:
        return (1.0 if dt is None else dt), None
    if dt is not None:
        raise ValueError(
            "Pass either `dt` (step sizes) or `ts` (time stamps of the states), not "
            "both: with `ts` the steps are `ts[k] - ts[k-1]`."
        )
    ts = jnp.asarray(ts)
    ts = ts.astype(dtype)
    if ts.shape != (T,):
        raise ValueError(
            f"`ts` must have one time stamp per input step, shape ({T},); got shape "
            f"{ts.shape}."
        )
    return steps_from_times(ts, 1.0), ts


def solve(
    neuron: AbstractLiquidNeuron,
    x0: ArrayLike,
    inputs: ArrayLike,
    *,
    solver: AbstractLiquidSolver = Auto(),
    dt: ArrayLike | None = None,
    ts: ArrayLike | None = None,
    discretisation: AbstractDiscretisation = Euler(),
    init: ArrayLike | None = None,
    throw: bool = True,
) -> Solution:
    r"""Evaluate a liquid neuron over a sequence of inputs: the one entry point of
    every view.

    The discrete solvers evaluate the recurrence $x_t = \Phi(x_{t-1}, u_t; \Delta t_t)$
    defined by `discretisation` ([`Sequential`][lrc_toolkit.Sequential]: a `lax.scan`;
    [`ParallelNewton`][lrc_toolkit.ParallelNewton]: Newton over the whole sequence
    with a parallel scan); [`ODE`][lrc_toolkit.ODE] integrates
    $dx/dt = f(x, u(t))$ with Diffrax; [`Auto`][lrc_toolkit.Auto] picks the fastest
    exact one for the backend. Batch with `jax.vmap`. `solve` is compiled
    (`equinox.filter_jit`, as `diffrax.diffeqsolve`): the first call for a neuron
    structure, solver, discretisation and array shapes compiles, later calls with
    new parameter values, inputs or step sizes reuse it.

    **Arguments:**

    - `neuron`: an [`AbstractLiquidNeuron`][lrc_toolkit.AbstractLiquidNeuron].
    - `x0`: the initial state $x_0$, shape `(D,)`.
    - `inputs`: $u_1, \dots, u_T$, shape `(T, P)`; $u_t$ is held over the step that
        ends at $x_t$.
    - `solver`: the algorithm, default [`Auto()`][lrc_toolkit.Auto].
    - `dt`: the step size, a scalar or one per step (shape `(T,)`); default 1.
    - `ts`: alternatively, the time stamps of $x_1, \dots, x_T$ (irregular sampling),
        shape `(T,)`, strictly increasing; the steps are their differences and the
        first step repeats the second one.
    - `discretisation`: the map $\Phi$ of the discrete solvers, default
        [`Euler()`][lrc_toolkit.Euler]; [`ImplicitEuler()`][lrc_toolkit.ImplicitEuler]
        for stiff neurons. Ignored by [`ODE`][lrc_toolkit.ODE] (which has its own
        Diffrax solver).
    - `init`: an initial guess for the states, shape `(T, D)`, for
        [`ParallelNewton`][lrc_toolkit.ParallelNewton] (e.g. the previous training
        step's states); ignored by the other solvers.
    - `throw`: raise an error when the outcome is not successful (non-finite states,
        an unstable step, Newton not converged, a failed ODE solve), with the cause
        and the fixes in the message: a [`SolveError`][lrc_toolkit.SolveError]
        (see [`Solution.raise_if_failed`][lrc_toolkit.Solution.raise_if_failed]).
        With `False`, check `Solution.result`.

    **Returns:**

    A [`Solution`][lrc_toolkit.Solution] with `states` $x_1, \dots, x_T$ of shape
    `(T, D)`, `result`, `iterations` and `stats`.
    """
    if not isinstance(solver, AbstractLiquidSolver):
        raise TypeError(
            "`solver` must be an `lrc_toolkit.AbstractLiquidSolver` such as "
            "`Sequential()`, `ParallelNewton()`, `ODE(diffrax.Tsit5())` or `Auto()`, "
            f"got {type(solver).__name__}."
        )
    check_discretisation(discretisation)
    # Compiled once per neuron structure, solver, step and shapes: called eagerly,
    # a solve would otherwise trace and compile its loops anew at every call
    # (about a second each on a CPU). Scalars are made arrays so that a new `dt`
    # value does not compile again.
    as_array = lambda a: a if a is None or eqx.is_array(a) else jnp.asarray(a)
    x0, inputs, dt, ts, init = map(as_array, (x0, inputs, dt, ts, init))
    sol = _solve(neuron, x0, inputs, solver, dt, ts, discretisation, init)
    if throw:
        sol = sol.raise_if_failed()
    return sol


@eqx.filter_jit
def _solve(neuron, x0, inputs, solver, dt, ts, discretisation, init) -> Solution:
    x0, inputs = as_arrays(neuron, x0, inputs)
    real = jnp.finfo(x0.dtype).dtype
    dt, ts = time_grid(dt, ts, inputs.shape[0], real)
    dt = as_steps(dt, x0, inputs)
    x0, inputs, dt, ts = checked(x0, inputs, dt, ts)
    if ts is None:
        ts = jnp.cumsum(dt)
    if init is not None:
        init = jnp.asarray(init, dtype=x0.dtype)
    sol = solver.run(neuron, x0, inputs, dt, ts, discretisation, init)
    return sol


def solve_sequential(neuron, x0, inputs, **kwargs) -> Solution:
    """Shorthand for `solve(neuron, x0, inputs, solver=Sequential(), **kwargs)`."""
    return solve(neuron, x0, inputs, solver=Sequential(), **kwargs)


def solve_parallel(neuron, x0, inputs, **kwargs) -> Solution:
    """Shorthand for `solve(neuron, x0, inputs, solver=ParallelNewton(), **kwargs)`."""
    return solve(neuron, x0, inputs, solver=ParallelNewton(), **kwargs)
