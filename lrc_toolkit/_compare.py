import dataclasses
import time
from collections.abc import Callable

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import ArrayLike

from ._discretise import AbstractDiscretisation, Euler
from ._neurons.base import AbstractLiquidNeuron
from ._solution import Solution
from ._solve._common import validate
from ._solve.ode import solve_ode
from ._solve.parallel import solve_parallel
from ._solve.sequential import solve_sequential


@dataclasses.dataclass(frozen=True)
class ViewComparison:
    """The outcome of [`compare_views`][lrc_toolkit.compare_views].

    **Attributes:**

    - `sequential`, `parallel`, `ode`: the three [`Solution`][lrc_toolkit.Solution]s.
    - `parallel_vs_sequential`: `{"max": ..., "mean": ...}` absolute differences
        between the parallel and the sequential evaluation of the same recurrence
        (solver error: should be at tolerance level).
    - `recurrence_vs_ode`: the same between the discrete recurrence and the fine
        adaptive ODE solution (discretisation error of the recurrence).
    - `iterations`: Newton iterations of the parallel solve.
    - `seconds`: median wall time of each view after compilation.
    """

    sequential: Solution
    parallel: Solution
    ode: Solution
    parallel_vs_sequential: dict[str, float]
    recurrence_vs_ode: dict[str, float]
    iterations: int
    seconds: dict[str, float]

    def summary(self) -> str:
        """A short human-readable table."""
        ps, ro = self.parallel_vs_sequential, self.recurrence_vs_ode
        lines = [
            f"parallel vs sequential : max {ps['max']:.3e}  mean {ps['mean']:.3e}  "
            f"({self.iterations} Newton iterations)",
            f"recurrence vs ODE      : max {ro['max']:.3e}  mean {ro['mean']:.3e}",
            "seconds                : "
            + "  ".join(f"{k} {v:.4f}" for k, v in self.seconds.items()),
        ]
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


def compare_views(
    neuron: AbstractLiquidNeuron,
    inputs: ArrayLike,
    x0: ArrayLike | None = None,
    *,
    dt: ArrayLike = 1.0,
    discretisation: AbstractDiscretisation = Euler(),
    method: str | None = None,
    ode_solver: diffrax.AbstractSolver = diffrax.Tsit5(),
    ode_rtol: float = 1e-8,
    ode_atol: float = 1e-8,
    repeats: int = 3,
) -> ViewComparison:
    r"""Solve one neuron on one input sequence in the three views and compare them.

    - **sequential**: [`solve_sequential`][lrc_toolkit.solve_sequential], the
        recurrence $x_t = \Phi(x_{t-1}, u_t)$ step by step;
    - **parallel**: [`solve_parallel`][lrc_toolkit.solve_parallel], the same
        recurrence by Newton + associative scan;
    - **ode**: [`solve_ode`][lrc_toolkit.solve_ode] with a fine adaptive solver
        and the inputs held constant on each step, i.e. the continuous-time model
        that the recurrence discretises.

    **Arguments:**

    - `neuron`: the neuron.
    - `inputs`: shape `(T, P)`.
    - `x0`: the initial state (default zeros).
    - `dt`: the step size, scalar or `(T,)`; the ODE samples are at its cumulative sums.
    - `discretisation`, `method`: passed to the sequential/parallel solvers.
    - `ode_solver`, `ode_rtol`, `ode_atol`: the reference ODE solve
        (`diffrax.PIDController(rtol, atol)`).
    - `repeats`: timed runs per view (after one compile/warm-up run); the median is
        reported.

    **Returns:**

    A [`ViewComparison`][lrc_toolkit.ViewComparison]; plot it with
    [`plot_comparison`][lrc_toolkit.plot_comparison].
    """
    if x0 is None:
        inputs = jnp.asarray(inputs)
        x0 = jnp.zeros((neuron.state_size,), inputs.dtype)
    x0, inputs, dts = validate(neuron, x0, inputs, dt)
    ts = jnp.cumsum(dts)
    seq_fn = eqx.filter_jit(
        lambda n, u: solve_sequential(n, x0, u, dt=dts, discretisation=discretisation)
    )
    par_fn = eqx.filter_jit(
        lambda n, u: solve_parallel(
            n, x0, u, dt=dts, discretisation=discretisation, method=method
        )
    )
    controller = diffrax.PIDController(rtol=ode_rtol, atol=ode_atol)
    ode_fn = eqx.filter_jit(
        lambda n, u: solve_ode(
            n, ts, u, x0, solver=ode_solver, stepsize_controller=controller, t0=0.0
        )
    )
    seq, t_seq = _timed(lambda: seq_fn(neuron, inputs), repeats)
    par, t_par = _timed(lambda: par_fn(neuron, inputs), repeats)
    ode, t_ode = _timed(lambda: ode_fn(neuron, inputs), repeats)
    return ViewComparison(
        sequential=seq,
        parallel=par,
        ode=ode,
        parallel_vs_sequential=_diff(par.states, seq.states),
        recurrence_vs_ode=_diff(seq.states, ode.states),
        iterations=int(par.iterations),
        seconds={"sequential": t_seq, "parallel": t_par, "ode": t_ode},
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
    import matplotlib.pyplot as plt

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
