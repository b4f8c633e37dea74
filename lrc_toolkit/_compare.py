import dataclasses
import time
from collections.abc import Callable

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import ArrayLike

from ._diagnostics import check_jacobian_structure
from ._discretise import AbstractDiscretisation, Euler
from ._extras import require
from ._neurons.base import AbstractLiquidNeuron
from ._solution import RESULTS, Solution
from ._solve.newton import ParallelNewton
from ._solve.ode import ODE
from ._solve.sequential import Sequential
from ._solve.solve import solve


@dataclasses.dataclass(frozen=True)
class ViewComparison:
    r"""The outcome of [`compare_views`][lrc_toolkit.compare_views].

    **Attributes:**

    - `sequential`, `parallel`, `ode`: the three [`Solution`][lrc_toolkit.Solution]s.
    - `parallel_vs_sequential`: `{"max": ..., "mean": ...}` absolute differences
        between the parallel and the sequential evaluation of the same recurrence
        (solver error: should be at tolerance level).
    - `recurrence_vs_ode`: the same between the discrete recurrence and the fine
        adaptive ODE solution (discretisation error of the recurrence).
    - `iterations`: Newton iterations of the parallel solve.
    - `seconds`: median wall time of each view after compilation.
    - `max_factor`: the largest step-Jacobian factor $|\partial\Phi_i/\partial x_i|$
        along the trajectory (above 1 on a component the ODE damps: the explicit step
        is unstable; see [`RESULTS`][lrc_toolkit.RESULTS]).
    - `outcomes`: the [`RESULTS`][lrc_toolkit.RESULTS] message of each view
        (`""` when successful).
    """

    sequential: Solution
    parallel: Solution
    ode: Solution
    parallel_vs_sequential: dict[str, float]
    recurrence_vs_ode: dict[str, float]
    iterations: int
    seconds: dict[str, float]
    max_factor: float
    outcomes: dict[str, str]

    def summary(self) -> str:
        """A short human-readable table."""
        ps, ro = self.parallel_vs_sequential, self.recurrence_vs_ode
        lines = [
            f"parallel vs sequential : max {ps['max']:.3e}  mean {ps['mean']:.3e}  "
            f"({self.iterations} Newton iterations)",
            f"recurrence vs ODE      : max {ro['max']:.3e}  mean {ro['mean']:.3e}",
            "seconds                : "
            + "  ".join(f"{k} {v:.4f}" for k, v in self.seconds.items()),
            f"largest step factor    : {self.max_factor:.4g}"
            + ("  (> 1: check stability)" if self.max_factor > 1 else ""),
        ]
        for view, message in self.outcomes.items():
            if message:
                lines.append(f"{view} failed: {message}")
        return "\n".join(lines)


def _timed(fn: Callable, repeats: int) -> tuple[Solution, float]:
    out = jax.block_until_ready(fn())  # compile and warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return out, float(np.median(times))


def _diff(x, y) -> dict[str, float]:
    d = jnp.abs(x - y)
    return {"max": float(jnp.max(d)), "mean": float(jnp.mean(d))}


def _outcome(sol: Solution) -> str:
    result = sol.result
    if bool(result == RESULTS.successful):
        return ""
    return RESULTS[result]


def compare_views(
    neuron: AbstractLiquidNeuron,
    x0: ArrayLike | None,
    inputs: ArrayLike,
    *,
    dt: ArrayLike = 1.0,
    discretisation: AbstractDiscretisation = Euler(),
    parallel: ParallelNewton = ParallelNewton(),
    ode: ODE = ODE(
        diffrax.Tsit5(), stepsize_controller=diffrax.PIDController(rtol=1e-8, atol=1e-8)
    ),
    repeats: int = 3,
) -> ViewComparison:
    r"""Solve one neuron on one input sequence in the three views and compare them.

    - **sequential**: [`Sequential`][lrc_toolkit.Sequential], the recurrence
        $x_t = \Phi(x_{t-1}, u_t)$ step by step;
    - **parallel**: [`ParallelNewton`][lrc_toolkit.ParallelNewton], the same
        recurrence by Newton + a parallel scan;
    - **ode**: [`ODE`][lrc_toolkit.ODE] with a fine adaptive solver and the inputs
        held constant on each step, i.e. the continuous-time model that the
        recurrence discretises.

    Before solving, the neuron's declared Jacobian structure is checked
    ([`check_jacobian_structure`][lrc_toolkit.check_jacobian_structure]); no view
    raises on failure: each view's outcome is reported, with the largest step factor.

    **Arguments:**

    - `neuron`: the neuron.
    - `x0`: the initial state, shape `(D,)`, or `None` for zeros.
    - `inputs`: shape `(T, P)`.
    - `dt`: the step size, scalar or `(T,)`; the ODE samples are at its cumulative sums.
    - `discretisation`: the map $\Phi$ of the sequential and parallel views.
    - `parallel`: the parallel solver (e.g. `ParallelNewton(method="quasi")`).
    - `ode`: the reference ODE solver (default Tsit5 with
        `PIDController(rtol=1e-8, atol=1e-8)`).
    - `repeats`: timed runs per view (after one compile/warm-up run); the median is
        reported.

    **Returns:**

    A [`ViewComparison`][lrc_toolkit.ViewComparison]; plot it with
    [`plot_comparison`][lrc_toolkit.plot_comparison].
    """
    check_jacobian_structure(neuron)
    if x0 is None:
        x0 = jnp.zeros((neuron.state_size,), jnp.asarray(inputs).dtype)

    def view(solver):
        return eqx.filter_jit(
            lambda n, x, u: solve(
                n,
                x,
                u,
                solver=solver,
                dt=dt,
                discretisation=discretisation,
                throw=False,
            )
        )

    views = {"sequential": Sequential(), "parallel": parallel, "ode": ode}
    sols, seconds = {}, {}
    for name, solver in views.items():
        fn = view(solver)
        sols[name], seconds[name] = _timed(lambda: fn(neuron, x0, inputs), repeats)
    seq, par, ode_sol = sols["sequential"], sols["parallel"], sols["ode"]
    return ViewComparison(
        sequential=seq,
        parallel=par,
        ode=ode_sol,
        parallel_vs_sequential=_diff(par.states, seq.states),
        recurrence_vs_ode=_diff(seq.states, ode_sol.states),
        iterations=int(par.iterations),
        seconds=seconds,
        max_factor=float(jnp.fmax(par.stats["max_factor"], seq.stats["max_factor"])),
        outcomes={name: _outcome(sol) for name, sol in sols.items()},
    )


def plot_comparison(comparison: ViewComparison, *, neurons: int = 4):
    """Plot the trajectories of the three views and their differences.

    **Arguments:**

    - `comparison`: the output of [`compare_views`][lrc_toolkit.compare_views].
    - `neurons`: how many neurons' trajectories to draw.

    **Returns:**

    A `matplotlib.figure.Figure` with two panels: the states over time (sequential
    solid, parallel dashed, ODE dotted) and the absolute differences on a log scale.
    """
    plt = require("matplotlib.pyplot", "`plot_comparison`")
    seq = np.asarray(comparison.sequential.states)
    par = np.asarray(comparison.parallel.states)
    ode = np.asarray(comparison.ode.states)
    steps = np.arange(1, seq.shape[0] + 1)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    for i in range(min(neurons, seq.shape[1])):
        (line,) = top.plot(steps, seq[:, i], lw=1.5, label=f"x_{i} sequential")
        top.plot(steps, par[:, i], "--", color=line.get_color(), lw=1.5)
        top.plot(steps, ode[:, i], ":", color="k", lw=1)
    top.set_ylabel("state")
    top.set_title("solid: sequential   dashed: parallel   dotted: ODE (adaptive)")
    floor = np.finfo(seq.dtype).eps * 1e-2  # exact agreement drawn at the floor
    bottom.semilogy(
        steps,
        np.maximum(np.max(np.abs(par - seq), axis=1), floor),
        label="|parallel − sequential|",
    )
    bottom.semilogy(
        steps,
        np.maximum(np.max(np.abs(seq - ode), axis=1), floor),
        label="|recurrence − ODE|",
    )
    bottom.set_xlabel("time step")
    bottom.set_ylabel("max abs difference")
    bottom.legend()
    fig.tight_layout()
    return fig
