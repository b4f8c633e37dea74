import abc

import equinox as eqx
from jaxtyping import Array, Inexact, Real

from .._discretise import AbstractDiscretisation
from .._neurons.base import AbstractLiquidNeuron
from .._solution import Solution


class AbstractLiquidSolver(eqx.Module):
    """How [`solve`][lrc_toolkit.solve] evaluates a neuron over a sequence.

    Subclasses are final modules holding their options:
    [`Sequential`][lrc_toolkit.Sequential], [`ParallelNewton`][lrc_toolkit.ParallelNewton],
    [`ODE`][lrc_toolkit.ODE] and [`Auto`][lrc_toolkit.Auto]. `solve` validates the
    arguments, calls `run`, and raises on a failed outcome when `throw=True`.
    """

    @abc.abstractmethod
    def run(
        self,
        neuron: AbstractLiquidNeuron,
        x0: Inexact[Array, " D"],
        inputs: Inexact[Array, "T P"],
        dt: Real[Array, " T"],
        ts: Real[Array, " T"],
        discretisation: AbstractDiscretisation,
        init: Inexact[Array, "T D"] | None,
    ) -> Solution:
        """Solve on validated arguments.

        **Arguments:**

        - `neuron`, `x0`, `inputs`: validated arrays (shapes `(D,)`, `(T, P)`).
        - `dt`: the step sizes, shape `(T,)`.
        - `ts`: the times of the states $x_1, \\dots, x_T$, shape `(T,)`; the
            initial state is at `ts[0] - dt[0]`.
        - `discretisation`: the map $\\Phi$ of the discrete solvers.
        - `init`: an initial guess for the states (Newton), or `None`.

        **Returns:**

        A [`Solution`][lrc_toolkit.Solution] (not raising on failure).
        """
