import diffrax
import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Bool, Inexact, Int, Real


class RESULTS(diffrax.RESULTS):  # pyright: ignore
    """The outcome of a solve. Extends `diffrax.RESULTS` (so that ODE outcomes carry
    over unchanged) with the outcomes of the parallel Newton solver."""

    newton_max_iters_reached = (
        "The parallel Newton iteration did not converge within `max_iters` "
        "iterations. Raise `max_iters`, loosen `rtol`/`atol`, warm-start with `init`, "
        "or check that the neuron is stable at this step size (see "
        "`lrc_toolkit.transition_factors`)."
    )
    newton_nonfinite = (
        "The parallel Newton iteration produced NaN, infinite or overflowing states. "
        "The recurrence itself may be unstable (large parameters or step size), or "
        "Newton diverged on a locally expanding recurrence: try "
        "`fallback='sequential'`, damped Newton (`damping=1.0`), a smaller `dt`, or "
        "the semi-implicit discretisation."
    )


class Solution(eqx.Module):
    """The result of [`solve_sequential`][lrc_toolkit.solve_sequential],
    [`solve_parallel`][lrc_toolkit.solve_parallel] or
    [`solve_ode`][lrc_toolkit.solve_ode].

    **Attributes:**

    - `states`: the states $x_1, \\dots, x_T$, shape `(T, D)` (the initial state
        $x_0$ is not included).
    - `ts`: the times of `states` for `solve_ode`, else `None`.
    - `iterations`: the number of Newton iterations (parallel solver), else `None`.
    - `result`: a [`RESULTS`][lrc_toolkit.RESULTS] member.
    - `stats`: solver statistics (e.g. Diffrax's step counts).
    """

    states: Inexact[Array, "T D"]
    result: RESULTS
    ts: Real[Array, " T"] | None = None
    iterations: Int[Array, ""] | None = None
    stats: dict = eqx.field(default_factory=dict)

    @property
    def converged(self) -> Bool[Array, "*batch"]:
        """Whether the solve succeeded (`result == RESULTS.successful`)."""
        return jnp.asarray(self.result == RESULTS.successful)
