import abc

import diffrax
import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Inexact, PyTree, Real

from ._neurons.base import AbstractLiquidNeuron


class AbstractDiscretisation(eqx.Module):
    r"""Turns a neuron's vector field into a one-step map
    $x_t = \Phi(x_{t-1}, u_t; \Delta t_t)$.

    Both [`solve_sequential`][lrc_toolkit.solve_sequential] (a `lax.scan` of $\Phi$)
    and [`solve_parallel`][lrc_toolkit.solve_parallel] (Newton on the whole sequence)
    evaluate the recurrence defined by a discretisation, so they agree to solver
    tolerance for any of them. The input is held constant over each step.
    """

    @abc.abstractmethod
    def step(
        self,
        neuron: AbstractLiquidNeuron,
        x: Inexact[Array, " D"],
        drive: PyTree[Array],
        dt: Real[Array, ""],
    ) -> Inexact[Array, " D"]:
        """One step of the map $\\Phi$.

        **Arguments:**

        - `neuron`: the neuron.
        - `x`: the state at the start of the step.
        - `drive`: `neuron.drive(u)` for the input held over this step.
        - `dt`: the step size.

        **Returns:**

        The state at the end of the step.
        """


class Euler(AbstractDiscretisation):
    r"""Explicit Euler, $\Phi(x, u) = x + \Delta t\, f(x, u)$: the LrcSSM paper's
    discretisation (with $\Delta t = 1$)."""

    def step(self, neuron, x, drive, dt):
        dt = jnp.asarray(dt).astype(x.dtype)  # a real step for a complex state too
        return x + dt * neuron.driven_vector_field(x, drive)


class SemiImplicitEuler(AbstractDiscretisation):
    r"""The semi-implicit ("fused") step of `ncps`, for neurons of the form
    $f(x, u) = A(x, u) \odot x + b(x, u)$:

    $$\Phi(x, u) = \frac{x + \Delta t\, b(x, u)}{1 - \Delta t\, A(x, u)}.$$

    It treats the linear term implicitly, so it is stable for any $\Delta t$ when
    $A \le 0$ (as for [`LTC`][lrc_toolkit.LTC] and [`LRC`][lrc_toolkit.LRC]), where
    explicit Euler diverges once $\Delta t\,|A| > 2$. The neuron must define
    [`affine_form`][lrc_toolkit.AbstractLiquidNeuron.affine_form].

    **Arguments:**

    - `substeps`: the number of sub-steps of size $\Delta t /$ `substeps` per step
        (`ncps` uses 6 "ODE unfolds").
    """

    substeps: int = eqx.field(default=1, static=True)

    def __check_init__(self):
        if not isinstance(self.substeps, int) or self.substeps < 1:
            raise ValueError(
                f"`substeps` must be a positive integer, got {self.substeps!r}."
            )

    def step(self, neuron, x, drive, dt):
        h = jnp.asarray(dt).astype(x.dtype) / self.substeps
        for _ in range(self.substeps):
            A, b = neuron.affine_form(x, drive)
            x = (x + h * b) / (1 - h * A)
        return x


class DiffraxStep(AbstractDiscretisation):
    r"""One step of a Diffrax solver, $\Phi(x, u) = \text{solver.step}(x; \Delta t)$,
    with the input held constant over the step.

    Any Diffrax ODE solver works (`Heun`, `Midpoint`, `Ralston`, `Tsit5`, ... and
    implicit ones such as `Kvaerno5`); explicit Runge–Kutta steps of a diagonal
    neuron have a diagonal Jacobian, so the parallel solver stays $O(TD)$.

    **Arguments:**

    - `solver`: a `diffrax.AbstractSolver`, e.g. `diffrax.Heun()`.
    """

    solver: diffrax.AbstractSolver

    def __check_init__(self):
        if not isinstance(self.solver, diffrax.AbstractSolver):
            raise TypeError(
                f"`solver` must be a diffrax solver such as `diffrax.Heun()`, got "
                f"{type(self.solver).__name__}."
            )

    def step(self, neuron, x, drive, dt):
        solver = self.solver
        if getattr(solver, "scan_kind", "lax") is None:
            # Diffrax's default stage loop is reverse-mode only, "lax" forward-mode
            # only; Newton differentiates Φ forwards (one JVP per iteration) and the
            # adjoint backwards, and "bounded" supports both.
            solver = eqx.tree_at(
                lambda s: s.scan_kind, solver, "bounded", is_leaf=lambda v: v is None
            )
        term = diffrax.ODETerm(lambda t, y, args: neuron.driven_vector_field(y, args))
        t0 = jnp.zeros((), dt.dtype)
        state = solver.init(term, t0, dt, x, drive)
        x1, *_ = solver.step(term, t0, dt, x, drive, state, made_jump=False)
        return x1
