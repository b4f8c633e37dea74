from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import ArrayLike, Inexact

from .._discretise import AbstractDiscretisation, Euler
from .._neurons.base import AbstractLiquidNeuron
from .._solution import RESULTS, Solution
from ._common import check_discretisation, drives, step_fn, validate
from .linear_scan import linear_recurrence
from .parallel import _solve, solve_parallel


_MODES = ("auto", "sequential", "parallel")


def default_mode() -> Literal["sequential", "parallel"]:
    """What `mode="auto"` picks: `"sequential"` on a CPU, `"parallel"` elsewhere."""
    return "sequential" if jax.default_backend() == "cpu" else "parallel"


# The sequential evaluation with the fixed-point adjoint of `solve_parallel`: the
# states solve x_t = Φ(x_{t-1}, u_t) exactly (a `lax.scan`), so the same implicit
# gradient applies, λ_t = ḡ_t + J_{t+1}ᵀ λ_{t+1} by one reverse linear recurrence and
# then one vmapped VJP of Φ. Nothing of the forward scan is stored: memory O(TD),
# where autodiff through `lax.scan` keeps every step's residuals.
@eqx.filter_custom_vjp
def _sequential(vjp_arg, discretisation, recurrence):
    neuron, x0, inputs, dt = vjp_arg
    phi = step_fn(neuron, discretisation)

    def body(x, d_and_dt):
        x = phi(x, *d_and_dt)
        return x, x

    _, states = jax.lax.scan(body, x0, (drives(neuron, inputs), dt))
    return states


@_sequential.def_fwd
def _sequential_fwd(perturbed, vjp_arg, discretisation, recurrence):
    states = _sequential.fn(vjp_arg, discretisation, recurrence)
    return states, states


@_sequential.def_bwd
def _sequential_bwd(states, g_states, perturbed, vjp_arg, discretisation, recurrence):
    # `solve_parallel`'s adjoint reads only the states, their cotangent, the
    # arguments, the discretisation and the recurrence; the Newton settings are
    # unused there.
    newton_settings = (None,) * 6  # init, method, rtol, atol, max_iters, throw
    return _solve.fn_bwd(
        states,
        (g_states,),
        perturbed,
        vjp_arg,
        discretisation,
        *newton_settings,
        recurrence,
    )


def solve(
    neuron: AbstractLiquidNeuron,
    x0: Inexact[ArrayLike, " D"],
    inputs: Inexact[ArrayLike, "T P"],
    *,
    dt: ArrayLike = 1.0,
    discretisation: AbstractDiscretisation = Euler(),
    mode: Literal["auto", "sequential", "parallel"] = "auto",
    **parallel_options: Any,
) -> Solution:
    r"""Evaluate the recurrence $x_t = \Phi(x_{t-1}, u_t)$ the fastest exact way for
    the backend, with memory-light implicit gradients either way.

    Both modes compute the same states (the sequential one exactly, the parallel one
    to Newton tolerance) and differentiate them at the fixed point, by one reverse
    linear recurrence and one vmapped VJP of $\Phi$ (memory $O(TD)$), rather than
    through the loop.

    **Arguments:**

    - `neuron`, `x0`, `inputs`, `dt`, `discretisation`: as for
        [`solve_sequential`][lrc_toolkit.solve_sequential].
    - `mode`:
        - `"sequential"`: a `lax.scan` of $\Phi$ forward. On a CPU this is the
          fastest exact evaluation: the parallel solver needs at least two Newton
          iterations, each costing more than the whole scan's arithmetic (see
          `benchmarks/`).
        - `"parallel"`: [`solve_parallel`][lrc_toolkit.solve_parallel] (Newton with
          an associative scan: $O(\log T)$ depth per iteration), the fast choice on
          GPUs and TPUs.
        - `"auto"` (default): `"sequential"` when JAX's default backend is the CPU,
          else `"parallel"`.
    - `**parallel_options`: passed to `solve_parallel` (`method`, `rtol`, `atol`,
        `max_iters`, `init`, `throw`, `recurrence`); accepted and ignored by the
        sequential mode, so one call works on every backend.

    **Returns:**

    A [`Solution`][lrc_toolkit.Solution]; `iterations` is 0 for the sequential
    mode.
    """
    if mode not in _MODES:
        raise ValueError(f"`mode` must be one of {_MODES}, got {mode!r}.")
    if mode == "auto":
        mode = default_mode()
    if mode == "parallel":
        return solve_parallel(
            neuron, x0, inputs, dt=dt, discretisation=discretisation, **parallel_options
        )
    unknown = set(parallel_options) - {
        "method", "rtol", "atol", "max_iters", "init", "throw", "recurrence"
    }  # fmt: skip
    if unknown:
        raise TypeError(f"solve() got unexpected keyword arguments {sorted(unknown)}.")
    check_discretisation(discretisation)
    x0, inputs, dt = validate(neuron, x0, inputs, dt)
    recurrence = parallel_options.get("recurrence") or linear_recurrence
    states = _sequential((neuron, x0, inputs, dt), discretisation, recurrence)
    return Solution(states=states, result=RESULTS.successful, iterations=jnp.array(0))
