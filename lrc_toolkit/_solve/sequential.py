import jax
from jaxtyping import ArrayLike

from .._discretise import AbstractDiscretisation, Euler
from .._neurons.base import AbstractLiquidNeuron
from .._solution import RESULTS, Solution
from ._common import check_discretisation, drives, step_fn, validate


def solve_sequential(
    neuron: AbstractLiquidNeuron,
    x0: ArrayLike,
    inputs: ArrayLike,
    *,
    dt: ArrayLike = 1.0,
    discretisation: AbstractDiscretisation = Euler(),
) -> Solution:
    r"""Evaluate the discrete recurrence $x_t = \Phi(x_{t-1}, u_t; \Delta t_t)$ one
    step after another with `jax.lax.scan`.

    This is the reference evaluation: $O(TD)$ work and $O(T)$ depth.

    **Arguments:**

    - `neuron`: an [`AbstractLiquidNeuron`][lrc_toolkit.AbstractLiquidNeuron].
    - `x0`: the initial state $x_0$, shape `(D,)`.
    - `inputs`: $u_1, \dots, u_T$, shape `(T, P)`; $u_t$ is held over the step that
        ends at $x_t$.
    - `dt`: the step size, a scalar or one per step (shape `(T,)`, irregular sampling).
    - `discretisation`: the map $\Phi$, default [`Euler()`][lrc_toolkit.Euler].

    **Returns:**

    A [`Solution`][lrc_toolkit.Solution] with `states` $x_1, \dots, x_T$ of shape
    `(T, D)`.
    """
    check_discretisation(discretisation)
    x0, inputs, dt = validate(neuron, x0, inputs, dt)
    phi = step_fn(neuron, discretisation)

    def body(x, d_and_dt):
        d, h = d_and_dt
        x = phi(x, d, h)
        return x, x

    _, states = jax.lax.scan(body, x0, (drives(neuron, inputs), dt))
    return Solution(states=states, result=RESULTS.successful)
