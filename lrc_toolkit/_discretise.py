import abc
from typing import ClassVar

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
from jaxtyping import Array, Bool, Inexact, PyTree, Real

from ._blocks import as_blocks, block_jacobian, block_size, value_and_diagonal
from ._checks import check_integer
from ._neurons.base import AbstractAffineNeuron, AbstractLiquidNeuron


class AbstractDiscretisation(eqx.Module):
    r"""Turns a neuron's vector field into a one-step map
    $x_t = \Phi(x_{t-1}, u_t; \Delta t_t)$.

    Both [`Sequential`][lrc_toolkit.Sequential] (a `lax.scan` of $\Phi$) and
    [`ParallelNewton`][lrc_toolkit.ParallelNewton] (Newton on the whole sequence)
    evaluate the recurrence defined by a discretisation, so they agree to solver
    tolerance for any of them. The input is held constant over each step.

    A discretisation defines `step` (used by the sequential solver) and
    `newton_step`, the map whose derivative with respect to the previous state is
    the step Jacobian $\partial\Phi/\partial x_{t-1}$ (used by Newton on the whole
    trajectory and by the fixed-point adjoint). For an explicit step the two are the
    same; an implicit step (`implicit = True`) linearises around a guess of the new
    state.
    """

    implicit: ClassVar[bool] = False

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

    def newton_step(
        self,
        neuron: AbstractLiquidNeuron,
        x: Inexact[Array, " D"],
        guess: Inexact[Array, " D"],
        drive: PyTree[Array],
        dt: Real[Array, ""],
    ) -> Inexact[Array, " D"]:
        """The step linearised around `guess`, an estimate of its result.

        Equal to `step(neuron, x, drive, dt)` where `guess` is the exact result, and
        with the same derivative with respect to `x` and the parameters there. An
        explicit step ignores `guess`.
        """
        return self.step(neuron, x, drive, dt)

    def step_and_check(
        self,
        neuron: AbstractLiquidNeuron,
        x: Inexact[Array, " D"],
        drive: PyTree[Array],
        dt: Real[Array, ""],
    ) -> tuple[Inexact[Array, " D"], Inexact[Array, " D"], Bool[Array, " D"]]:
        r"""`step(neuron, x, drive, dt)`, the diagonal of its Jacobian
        $\partial\Phi_i/\partial x_i$ (the step factors) and
        [`unstable`][lrc_toolkit.AbstractDiscretisation.unstable] at those factors:
        what `Sequential`'s stability check reads. The default: the factors from one
        JVP along ones for a diagonal neuron, $k$ JVPs for a block one, the full
        step Jacobian ($D$ JVPs) for a dense one; a discretisation with a cheaper
        exact form overrides it, sharing the work between the three outputs
        (`Euler`: $1 + \Delta t\, \partial f_i/\partial x_i$ from the neuron's
        [`field_and_diagonal`][lrc_toolkit.AbstractLiquidNeuron.field_and_diagonal];
        `SemiImplicitEuler`: from the affine form's diagonals)."""
        return _step_and_check(self, neuron, x, drive, dt)

    def unstable(
        self,
        neuron: AbstractLiquidNeuron,
        x: Inexact[Array, "*T D"],
        drive: PyTree[Array],
        dt: Real[Array, "*T"],
        factor: Inexact[Array, "*T D"],
    ) -> Bool[Array, "*T D"]:
        r"""Where the step amplifies a component that the ODE damps: the step factor
        $|\partial\Phi_i/\partial x_i| > 1$ while
        $\mathrm{Re}\,\partial f_i/\partial x_i < 0$ at `x` (genuinely expanding
        dynamics are not flagged). `factor` is the diagonal step factor at `x`;
        `x`, `drive`, `dt` and `factor` may have a leading time axis. $F$ from
        [`field_and_diagonal`][lrc_toolkit.AbstractLiquidNeuron.field_and_diagonal];
        discretisations for which the factor alone decides override this for
        free."""
        diagonal = lambda p, d: neuron.field_and_diagonal(p, d)[1]
        if factor.ndim == 2:
            diagonal = jax.vmap(diagonal)
        return _checked(factor, diagonal(x, drive))


def _amplifies(factor):
    return jnp.abs(factor) > 1 + 100 * jnp.finfo(factor.dtype).eps


def _step_and_check(discretisation, neuron, x, drive, dt):
    """The default `step_and_check`: the factors by differentiating the step."""
    step = lambda p: discretisation.step(neuron, p, drive, dt)
    x_new, factor = value_and_diagonal(step, x, neuron)
    return x_new, factor, discretisation.unstable(neuron, x, drive, dt, factor)


def _checked(factor, F):
    """Where a factor amplifies a component that the ODE damps (Re F < 0)."""
    return _amplifies(factor) & (jnp.real(F) < 0)


class Euler(AbstractDiscretisation):
    r"""Explicit Euler, $\Phi(x, u) = x + \Delta t\, f(x, u)$: the LrcSSM paper's
    discretisation (with $\Delta t = 1$). Stable for a component with
    $\partial f_i/\partial x_i = -1/\tau < 0$ only while $\Delta t \le 2\tau$."""

    def step(self, neuron, x, drive, dt):
        dt = jnp.asarray(dt).astype(x.dtype)  # a real step for a complex state too
        return x + dt * neuron.driven_vector_field(x, drive)

    def step_and_check(self, neuron, x, drive, dt):
        dt = jnp.asarray(dt).astype(x.dtype)
        f, F = neuron.field_and_diagonal(x, drive)
        factor = 1 + dt * F
        return x + dt * f, factor, self.unstable(neuron, x, drive, dt, factor)

    def unstable(self, neuron, x, drive, dt, factor):
        # The factor is 1 + Δt ∂f_i/∂x_i: it amplifies a damped component exactly
        # when |1 + Δt F| > 1 with Re F < 0, i.e. Re(factor) < 1 and |factor| > 1.
        return _amplifies(factor) & (jnp.real(factor) < 1)


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
        check_integer("substeps", self.substeps)

    def step(self, neuron, x, drive, dt):
        h = jnp.asarray(dt).astype(x.dtype) / self.substeps
        for _ in range(self.substeps):
            A, b = neuron.affine_form(x, drive)
            x = (x + h * b) / (1 - h * A)
        return x

    def step_and_check(self, neuron, x, drive, dt):
        if self.substeps > 1 or neuron.jacobian_structure == "block":
            return _step_and_check(self, neuron, x, drive, dt)
        # Phi_i = (x_i + h b_i) / (1 - h A_i): its derivative in x_i from the
        # affine form's diagonals (for LTC and DenseLRC from their self-synapses),
        # and df_i/dx_i = A_i + x_i dA_i/dx_i + db_i/dx_i from the same terms.
        h = jnp.asarray(dt).astype(x.dtype)
        (A, b), (dA, db) = neuron.affine_and_diagonal(x, drive)
        den = 1 - h * A
        x_new = (x + h * b) / den
        factor = ((1 + h * db) + x_new * h * dA) / den
        return x_new, factor, _checked(factor, A + x * dA + db)


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


def _root_tolerances(dtype) -> tuple[float, float]:
    if jnp.finfo(dtype).bits >= 64:
        return 1e-12, 1e-12
    return 1e-6, 1e-6


class ImplicitEuler(AbstractDiscretisation):
    r"""Backward (implicit) Euler, A-stable: $x_t$ solves
    $r(x_t) = x_t - x_{t-1} - \Delta t\, f(x_t, u_t) = 0$.

    Use it for stiff neurons, whose fastest time constant $\tau$ is smaller than
    $\Delta t / 2$ somewhere (explicit Euler then overshoots and explodes): the
    step is stable for every $\Delta t$ whenever the neuron is
    ($\partial f/\partial x \le 0$). Works for any neuron, diagonal or dense.

    - Sequentially, each step is a root find: Newton's method (elementwise for a
      diagonal neuron, $k \times k$ solves for a block one, a Lineax solve for a
      dense one), started from the
      semi-implicit step where the neuron has an affine form, else from $x_{t-1}$.
    - In parallel, [`ParallelNewton`][lrc_toolkit.ParallelNewton] runs Newton on the
      residuals of the whole trajectory at once. Linearised at the iterate
      $x^{(k)}$, with $F_t = \partial f/\partial x\,(x^{(k)}_t, u_t)$, the residuals
      give the linear recurrence
      $(I - \Delta t F_t)\, x_t = x_{t-1} + \Delta t\,(f(x^{(k)}_t) - F_t x^{(k)}_t)$,
      i.e. $x_t = M_t x_{t-1} + M_t c_t$ with $M_t = (I - \Delta t F_t)^{-1}$:
      elementwise for a diagonal neuron, small batched $k \times k$ solves for a
      block neuron (whose $M_t$ is block-diagonal too), a batched Lineax solve for
      a dense one.
    - Gradients use the fixed-point adjoint with the implicit step Jacobian
      $\partial x_t / \partial x_{t-1} = M_t$.

    **Arguments:**

    - `rtol`, `atol`: tolerances of the sequential root find (default $10^{-6}$ in
        float32, $10^{-12}$ in float64).
    - `max_steps`: the iteration limit of each root find (default 64). A root find
        that fails leaves NaN states, reported as `RESULTS.nonfinite_states`: where
        the dynamics expand fast ($\Delta t\,\partial f/\partial x \gtrsim 1$), the
        backward-Euler equation may have no solution near $x_{t-1}$; take smaller
        steps there.
    """

    implicit: ClassVar[bool] = True
    rtol: float | None = eqx.field(default=None, static=True)
    atol: float | None = eqx.field(default=None, static=True)
    max_steps: int = eqx.field(default=64, static=True)

    def __check_init__(self):
        for name in ("rtol", "atol"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"`{name}` must be positive or None, got {value!r}.")
        check_integer("max_steps", self.max_steps)

    def step(self, neuron, x, drive, dt):
        dt = jnp.asarray(dt).astype(x.dtype)
        default_rtol, default_atol = _root_tolerances(x.dtype)
        rtol = default_rtol if self.rtol is None else self.rtol
        atol = default_atol if self.atol is None else self.atol

        # Start from the semi-implicit step where the neuron has an affine form (an
        # A-stable predictor, close to the root), else from the previous state.
        guess = x
        if isinstance(neuron, AbstractAffineNeuron):
            A, b = neuron.affine_form(x, drive)
            guess = (x + dt * b) / (1 - dt * A)
        # Newton's method on the residual, stopped when the Newton update is within
        # tolerance (a test invariant to the residual's scale, which round-off
        # dominates for a very fast neuron in float32). The iteration runs on
        # constants; derivatives come from one more `newton_step` at the root, whose
        # derivatives are those of the implicit step (it holds F fixed, and the
        # residual vanishes there), in forward and reverse mode alike.
        const = lambda tree: jax.tree.map(
            lambda a: jax.lax.stop_gradient(a) if eqx.is_array(a) else a, tree
        )
        n_, x_, d_, dt_ = const((neuron, x, drive, dt))

        def keep_going(carry):
            k, _, ratio = carry
            return (k < self.max_steps) & ~(ratio <= 1)

        def newton(carry):
            k, y, _ = carry
            y_new = self.newton_step(n_, x_, y, d_, dt_)
            ratio = jnp.max(jnp.abs(y_new - y) / (atol + rtol * jnp.abs(y_new)))
            return k + 1, y_new, ratio

        real = jnp.finfo(x.dtype).dtype
        init = (jnp.array(0), const(guess), jnp.array(jnp.inf, real))
        _, root, ratio = jax.lax.while_loop(keep_going, newton, init)
        # A failed root find leaves NaN, so that the solver reports it.
        root = jnp.where(ratio <= 1, root, jnp.nan)
        return self.newton_step(neuron, x, root, drive, dt)

    def unstable(self, neuron, x, drive, dt, factor):
        # A-stable: M = (1 - Δt F)^{-1} has |M| <= 1 wherever Re F <= 0.
        return jnp.zeros(factor.shape, bool)

    def newton_step(self, neuron, x, guess, drive, dt):
        # One Newton step of the residual from `guess`. Its derivative with respect
        # to x (and, where the residual vanishes, to the parameters) is that of the
        # implicit step, M = (I - Δt F)^{-1}; F is evaluated at the (held) guess.
        dt = jnp.asarray(dt).astype(x.dtype)
        guess = jax.lax.stop_gradient(guess)
        field = lambda y: neuron.driven_vector_field(y, drive)
        r = guess - x - dt * field(guess)
        if neuron.jacobian_structure == "diagonal":
            _, F = jax.jvp(field, (guess,), (jnp.ones_like(guess),))
            return guess - r / (1 - dt * jax.lax.stop_gradient(F))
        if neuron.jacobian_structure == "block":
            # k x k blocks from k JVPs and one small batched solve per neuron.
            k = block_size(neuron)
            _, F = block_jacobian(field, guess, k)
            M = jnp.eye(k, dtype=x.dtype) - dt * jax.lax.stop_gradient(F)
            step = jnp.linalg.solve(M, as_blocks(r, k)[..., None])[..., 0]
            return guess - step.reshape(r.shape)
        F = jax.jacfwd(field, holomorphic=jnp.iscomplexobj(guess))(guess)
        F = jax.lax.stop_gradient(F)
        operator = lx.MatrixLinearOperator(jnp.eye(x.shape[0], dtype=x.dtype) - dt * F)
        return guess - lx.linear_solve(operator, r, lx.LU(), throw=False).value


class ClosedForm(AbstractDiscretisation):
    r"""The closed-form step of a CfC neuron:
    $\Phi(x, u; \Delta t)$ is `neuron.closed_form_step(x, neuron.drive(u), dt)`.

    The discretisation that evaluates [`CfC`][lrc_toolkit.CfC] and
    [`DiagonalCfC`][lrc_toolkit.DiagonalCfC] as published: each step is the
    closed-form solution over $\Delta t$ (scalar or one value per step, `ncps`'s
    `timespans`), not an approximation of an ODE. Works with the sequential and the
    parallel solvers (exact Newton for `DiagonalCfC`), and with any neuron that
    defines `closed_form_step(x, drive, dt)`.
    """

    def step(
        self,
        neuron: AbstractLiquidNeuron,
        x: Inexact[Array, " D"],
        drive,
        dt: Real[Array, ""],
    ) -> Inexact[Array, " D"]:
        return neuron.closed_form_step(x, drive, dt)

    def unstable(
        self,
        neuron: AbstractLiquidNeuron,
        x: Inexact[Array, "*T D"],
        drive,
        dt: Real[Array, "*T"],
        factor: Inexact[Array, "*T D"],
    ) -> Bool[Array, "*T D"]:
        # Never flagged: the closed form is the model itself, not a step that
        # approximates an ODE, so a step factor |dPhi_i/dx_i| > 1 is the cell's own
        # (learned) dynamics, not a step-size artefact. (Its vector field is not a
        # flow it approximates: see `AbstractCfC.vector_field`.) Non-finite states
        # are still reported by the solvers.
        return jnp.zeros(factor.shape, bool)
