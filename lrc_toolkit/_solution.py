import re

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
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
        "The step is unstable for this neuron: at some step a component that the ODE "
        "damps (Re df_i/dx_i < 0) is amplified by the step (|dPhi_i/dx_i| > 1). With "
        "explicit Euler a time constant is shorter than about dt/2; with "
        "SemiImplicitEuler the neuron's A(x) or b(x) changes fast over one step. The "
        "states are finite but do not approximate the neuron's dynamics. Fixes: a "
        "smaller `dt`, `discretisation=SemiImplicitEuler()` (for an explicit step "
        "of a neuron with an affine form) or `discretisation=ImplicitEuler()` (any "
        "neuron, A-stable: never flagged). `Solution.stats['max_factor']` is the "
        "largest |dPhi/dx|."
    )
    jacobian_structure_mismatch = (
        "The neuron's step Jacobian has entries outside its declared "
        "`jacobian_structure`: a neuron declared 'diagonal' whose components see "
        "each other, or one declared 'block' that couples variables of different "
        "blocks (neuron i's variables are [i*k:(i+1)*k]). The sequential states are "
        "right, but Newton's steps, the step factors and the fixed-point gradients "
        "would be wrong. Find the coupled components with "
        "`lrc_toolkit.check_jacobian_structure(neuron)`, then either make each "
        "neuron see the state only through its own variables (couple neurons "
        "through their inputs) or declare jacobian_structure='dense'."
    )
    newton_max_iters_reached = (
        "The parallel Newton iteration did not converge within `max_iters` "
        "iterations. Raise `max_iters`, loosen `rtol`/`atol`, warm-start with `init`, "
        "check that the neuron is stable at this step size (see "
        "`lrc_toolkit.transition_factors`), or use "
        "`ParallelNewton(fallback=Sequential())`. A positive largest Lyapunov "
        "exponent along the sequence (`lrc_toolkit.lyapunov_exponent`) means the "
        "recurrence is unpredictable (e.g. spiking): Newton then needs up to T "
        "iterations and `Sequential()` is the faster solver."
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

    @property
    def outcome(self) -> str | np.ndarray:
        """The name of the `result` member, e.g. `"successful"` or `"unstable_step"`
        (an array of names for a batch of solves; `"traced"` inside `jit`)."""
        if self.result.is_traced():
            return "traced"
        index = np.asarray(_index(self.result))
        return _NAMES[int(index)] if index.ndim == 0 else np.asarray(_NAMES)[index]

    def __repr__(self) -> str:
        # Equinox prints a member by its message, which is empty for `successful`
        # (`RESULTS<>`); the outcome's name reads better, and the states are
        # summarised by shape and dtype as Equinox does.
        def short(x):
            if x is None or not hasattr(x, "shape"):
                return repr(x)
            if x.ndim == 0 and not isinstance(x, jax.core.Tracer):
                return repr(x.item())
            return eqx.tree_pformat(x)

        stats = ", ".join(f"{k}={short(v)}" for k, v in self.stats.items())
        outcome = self.outcome
        outcome = outcome.tolist() if isinstance(outcome, np.ndarray) else outcome
        return (
            f"Solution(outcome={outcome!r}, states={short(self.states)}, "
            f"iterations={short(self.iterations)}, ts={short(self.ts)}, "
            f"stats={{{stats}}})"
        )

    def raise_if_failed(self, prefix: str = "") -> "Solution":
        """Raise if the solve failed, with `prefix` before the outcome's message;
        as `equinox.error_if`, use the returned solution (inside `jit` the check is
        tied to its states).

        Outside `jit` a failure raises a [`SolveError`][lrc_toolkit.SolveError],
        which carries the [`RESULTS`][lrc_toolkit.RESULTS] member; inside `jit`,
        Equinox's runtime error, from which
        [`SolveError.from_exception`][lrc_toolkit.SolveError.from_exception] reads
        the member back.

        **Arguments:**

        - `prefix`: text put before the message (one line), e.g. which layer failed.

        **Returns:**

        This solution (its states tied to the check).
        """
        return _raise_if_failed(self, prefix)


# Every member's name. Equinox lists an enumeration's members only in its own
# table; this is the one place that reads it.
_NAMES = tuple(RESULTS._name_to_item)


def _index(result: RESULTS) -> Int[Array, "*batch"]:
    """The position of `result`'s member in `_NAMES` (by comparisons, so that it
    works on traced and batched results alike)."""
    return sum(
        jnp.where(result == getattr(RESULTS, name), i, 0)
        for i, name in enumerate(_NAMES)
    )


def _message(name: str, prefix: str) -> str:
    return prefix + RESULTS[getattr(RESULTS, name)]


def _tag(name: str) -> str:
    # Written after a message raised from inside `jit`, where Equinox carries text
    # only, so that `SolveError.from_exception` can read the member back.
    return f" [lrc_toolkit.RESULTS.{name}]"


_TAGGED = re.compile(
    r"^(?:.*EquinoxRuntimeError: )?(.*) \[lrc_toolkit\.RESULTS\.(\w+)\]$"
)


class SolveError(eqx.EquinoxRuntimeError):
    """A failed solve as data: raised by
    [`Solution.raise_if_failed`][lrc_toolkit.Solution.raise_if_failed] (and so by
    [`solve`][lrc_toolkit.solve] with `throw=True`) outside `jit`, and recovered from
    the runtime error raised inside it by
    [`SolveError.from_exception`][lrc_toolkit.SolveError.from_exception].

    **Attributes:**

    - `result`: the [`RESULTS`][lrc_toolkit.RESULTS] member (the first failure, for
        a batch of solves).
    - `outcome`: its name, e.g. `"unstable_step"`.
    - `message`: the caller's prefix and the member's message (cause and fixes);
        also `str(error)`.
    """

    def __init__(self, message: str, outcome: str):
        super().__init__(message)
        self.message = message
        self.outcome = outcome
        self.result = getattr(RESULTS, outcome)

    @classmethod
    def from_exception(cls, error: BaseException) -> "SolveError | None":
        """The failed solve that `error` reports, or `None` if it reports none.

        `error` itself if it is a `SolveError`; for the runtime error that a failed
        `raise_if_failed` inside `jit` raises (Equinox carries text only), the
        member and the message read back from that text, without JAX's stack."""
        if isinstance(error, SolveError):
            return error
        for line in str(error).splitlines():
            match = _TAGGED.match(line)
            if match and match[2] in _NAMES:
                return cls(match[1], match[2])
        return None


def _raise_if_failed(sol: "Solution", prefix: str) -> "Solution":
    result = jax.lax.stop_gradient(sol.result)
    failed = result != RESULTS.successful
    if not result.is_traced():
        # Outside `jit`: a Python exception that carries the member.
        failed = np.asarray(failed)
        if np.any(failed):
            first = _NAMES[np.asarray(_index(result))[failed].flat[0]]
            raise SolveError(_message(first, prefix), first)
        return sol
    messages = [_message(name, prefix) + _tag(name) for name in _NAMES]
    # Check a scalar and tie it to the states (so that sharded states are not
    # gathered onto one device for the check).
    zero = eqx.branched_error_if(
        jnp.zeros((), sol.states.dtype), failed, _index(result), messages
    )
    return eqx.tree_at(lambda s: s.states, sol, sol.states + zero)
