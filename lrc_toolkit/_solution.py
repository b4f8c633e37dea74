import diffrax
import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Bool, Inexact, Int, Real


class RESULTS(diffrax.RESULTS):  # pyright: ignore
    """The outcome of a solve. Extends `diffrax.RESULTS` (so that ODE outcomes carry
    over unchanged) with the outcomes of the toolkit's solvers. Every solver reports
    the same outcome for the same fault."""

    nonfinite_states = (
        "The states became NaN, infinite or overflowed (|x| beyond the square root of "
        "the largest float). Causes: an unstable step (see `Solution.stats"
        "['max_factor']`: a step factor |dPhi/dx| > 1 amplifies errors), a vector "
        "field that returns NaN (check the neuron, e.g. with "
        "`lrc_toolkit.check_jacobian_structure`), or large parameters. Fixes: a "
        "smaller `dt`, `discretisation=SemiImplicitEuler()` or `ImplicitEuler()` for a "
        "stiff neuron, or, for Newton diverging on a locally expanding recurrence, "
        "`ParallelNewton(fallback=Sequential())` or `ParallelNewton(damping=1.0)`."
    )
    unstable_step = (
        "The explicit step is unstable for this neuron: at some step a component that "
        "the ODE damps (df_i/dx_i < 0) is amplified by the step (|dPhi_i/dx_i| > 1), "
        "i.e. a time constant is shorter than about dt/2. The states are finite but "
        "do not approximate the neuron's dynamics. Fixes: a smaller `dt`, "
        "`discretisation=SemiImplicitEuler()` (neurons with an affine form) or "
        "`discretisation=ImplicitEuler()` (any neuron, A-stable). "
        "`Solution.stats['max_factor']` is the largest |dPhi/dx|."
    )
    newton_max_iters_reached = (
        "The parallel Newton iteration did not converge within `max_iters` "
        "iterations. Raise `max_iters`, loosen `rtol`/`atol`, warm-start with `init`, "
        "check that the neuron is stable at this step size (see "
        "`lrc_toolkit.transition_factors`), or use "
        "`ParallelNewton(fallback=Sequential())`."
    )


class Solution(eqx.Module):
    r"""The result of [`solve`][lrc_toolkit.solve], whichever solver ran.

    **Attributes:**

    - `states`: the states $x_1, \dots, x_T$, shape `(T, D)` (the initial state
        $x_0$ is not included).
    - `ts`: the times of `states` when time stamps were given (or for the
        [`ODE`][lrc_toolkit.ODE] solver), else `None`.
    - `iterations`: the number of Newton iterations
        ([`ParallelNewton`][lrc_toolkit.ParallelNewton]; 0 for the other solvers).
    - `result`: a [`RESULTS`][lrc_toolkit.RESULTS] member.
    - `stats`: solver statistics: `max_factor`, the largest step-Jacobian factor
        $\max_{t,i} |\partial\Phi_i/\partial x_i|$ (NaN where not computed, e.g.
        the sequential solver on a dense neuron), `unstable` (whether an explicit
        step amplified a component the ODE damps), and per solver e.g.
        `fallback` (Newton), Diffrax's `num_steps` (ODE).
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
