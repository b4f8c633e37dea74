import abc
from typing import Literal, TYPE_CHECKING

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Inexact, PyTree, Real


if TYPE_CHECKING:
    from .._discretise import AbstractDiscretisation


JacobianStructure = Literal["diagonal", "block", "dense"]


class AbstractLiquidNeuron(eqx.Module):
    r"""A population of continuous-time neurons, $\frac{dx}{dt} = f(x, u)$.

    Subclass this and write [`vector_field`][lrc_toolkit.AbstractLiquidNeuron.vector_field]
    to define a new neuron; every solver in the toolkit (sequential, ODE and parallel)
    then works with it. A minimal example:

    ```python
    class Leaky(lrc_toolkit.AbstractLiquidNeuron):
        state_size: int
        input_size: int
        jacobian_structure = "diagonal"
        tau: Array
        weight: Array

        def vector_field(self, x, u):
            return (-x + jnp.tanh(self.weight @ u)) / self.tau
    ```

    **Fields and class attributes:**

    - `state_size`: the number of neurons $D$.
    - `input_size`: the number of input channels $P$.
    - `jacobian_structure`: `"diagonal"` when $\partial f_i / \partial x_j = 0$ for
        $i \neq j$ (each neuron sees the state only through its own component, and
        the input freely); `"block"` for a population of neurons with `block_size`
        $= k$ coupled variables each, coupled to other neurons only through the
        input (neuron $i$'s variables at `x[i*k:(i+1)*k]`, so $\partial f/\partial x$
        is block-diagonal with $k \times k$ blocks); else `"dense"`. A diagonal
        neuron is solved in parallel by exact Newton at $O(TD)$ cost, a block one
        at $O(TDk^2)$. [`check_jacobian_structure`][lrc_toolkit.check_jacobian_structure]
        verifies the declaration numerically.
    - `block_size` (class attribute of a `"block"` neuron only): $k$, which must
        divide `state_size`.

    **Optional hoisting of input-only terms:** a neuron may override
    [`drive`][lrc_toolkit.AbstractLiquidNeuron.drive] (everything that depends on
    the input alone, e.g. $W_u\,\sigma(u)$) and
    [`driven_vector_field`][lrc_toolkit.AbstractLiquidNeuron.driven_vector_field]
    (the rest). Solvers compute `drive` once per time step of the sequence, outside
    any Newton iteration. The defaults pass the input through unchanged.
    """

    state_size: eqx.AbstractVar[int]
    input_size: eqx.AbstractVar[int]
    jacobian_structure: eqx.AbstractClassVar[JacobianStructure]

    @abc.abstractmethod
    def vector_field(
        self, x: Inexact[Array, " D"], u: Inexact[Array, " P"]
    ) -> Inexact[Array, " D"]:
        r"""The time derivative $\frac{dx}{dt} = f(x, u)$ at one time point.

        **Arguments:**

        - `x`: the state, shape `(state_size,)`.
        - `u`: the input, shape `(input_size,)`.

        **Returns:**

        $\frac{dx}{dt}$, with the shape and dtype of `x`.
        """

    def drive(self, u: Inexact[Array, " P"]) -> PyTree[Array]:
        """The part of the dynamics that depends on the input alone.

        Solvers call this once per time step and pass the result to
        [`driven_vector_field`][lrc_toolkit.AbstractLiquidNeuron.driven_vector_field].
        The default returns `u` itself.

        **Arguments:**

        - `u`: the input at one time point, shape `(input_size,)`.

        **Returns:**

        Any PyTree of arrays.
        """
        return u

    def driven_vector_field(
        self, x: Inexact[Array, " D"], drive: PyTree[Array]
    ) -> Inexact[Array, " D"]:
        """The vector field evaluated from a precomputed [`drive`][lrc_toolkit.AbstractLiquidNeuron.drive].

        Must satisfy `driven_vector_field(x, drive(u)) == vector_field(x, u)`. The
        default calls `vector_field(x, drive)`, which is right whenever `drive` is the
        identity.
        """
        return self.vector_field(x, drive)

    def field_and_diagonal(
        self, x: Inexact[Array, " D"], drive: PyTree[Array]
    ) -> tuple[Inexact[Array, " D"], Inexact[Array, " D"]]:
        r"""The vector field $f(x)$ and the diagonal of its Jacobian,
        $\partial f_i / \partial x_i$, at `x` (for `drive = drive(u)`): what the
        stability checks read. The default: one JVP along ones for a diagonal
        neuron, $k$ JVPs for a block one, the full Jacobian ($D$ JVPs) for a dense
        one; a dense neuron with a cheaper exact form overrides it (`LTC` and
        `DenseLRC`: from the derivatives of their $D$ self-synapses)."""
        from .._blocks import value_and_diagonal

        return value_and_diagonal(lambda p: self.driven_vector_field(p, drive), x, self)

    def default_discretisation(self) -> "AbstractDiscretisation":
        """The step that [`LrcSSM`][lrc_toolkit.models.LrcSSM] and `lrc-toolkit
        compare` use for this neuron when none is given: explicit
        [`Euler()`][lrc_toolkit.Euler]. A neuron overrides it when another step is
        its natural one (`LTC` and `ComplexLRC`: the semi-implicit step; `CfC`:
        its closed form)."""
        from .._discretise import Euler

        return Euler()

    def closed_form_step(
        self, x: Inexact[Array, " D"], drive: PyTree[Array], dt: Real[ArrayLike, "*D"]
    ) -> Inexact[Array, " D"]:
        r"""The state after a step of length $\Delta t$ with the input held
        constant, for a neuron defined by its closed-form step (such as
        [`CfC`][lrc_toolkit.CfC]); what [`ClosedForm`][lrc_toolkit.ClosedForm]
        evaluates. Optional: neurons defined by their vector field have none.

        **Arguments:**

        - `x`: the state at the start of the step.
        - `drive`: `self.drive(u)` for the input held over the step.
        - `dt`: the step length (a scalar, or one per state component).

        **Returns:**

        The state at the end of the step, with the shape and dtype of `x`.
        """
        raise TypeError(
            "ClosedForm() needs a neuron with a closed-form step, "
            "`closed_form_step(x, drive, dt)` (such as `CfC` or `DiagonalCfC`); "
            f"{type(self).__name__} has none. Use a discretisation of its vector "
            "field instead, e.g. `Euler()`."
        )

    def affine_form(
        self, x: Inexact[Array, " D"], drive: PyTree[Array]
    ) -> tuple[Inexact[Array, " D"], Inexact[Array, " D"]]:
        r"""Write the vector field as $f(x, u) = A(x, u) \odot x + b(x, u)$.

        Optional: needed only by the semi-implicit
        [`SemiImplicitEuler`][lrc_toolkit.SemiImplicitEuler] step. Liquid neurons
        (LRC, LTC) have this form with $A \le 0$.

        **Returns:**

        The pair `(A, b)`, each of the shape of `x`.
        """
        raise NotImplementedError(
            f"{type(self).__name__} does not define `affine_form(x, drive)`, which the "
            "semi-implicit step needs. Define it (returning (A, b) with "
            "f(x, u) = A * x + b), or use another discretisation such as `Euler()`."
        )

    def affine_and_diagonal(
        self, x: Inexact[Array, " D"], drive: PyTree[Array]
    ) -> tuple[
        tuple[Inexact[Array, " D"], Inexact[Array, " D"]],
        tuple[Inexact[Array, " D"], Inexact[Array, " D"]],
    ]:
        r"""`(A, b)` of [`affine_form`][lrc_toolkit.AbstractLiquidNeuron.affine_form]
        and the diagonals of their Jacobians, $(\partial A_i/\partial x_i,
        \partial b_i/\partial x_i)$: what the semi-implicit step's factor reads.
        The default: one JVP along ones for a diagonal neuron, the full Jacobians
        otherwise; `LTC` and `DenseLRC` override it (the derivatives of their $D$
        self-synapses: $O(D)$)."""
        affine = lambda p: self.affine_form(p, drive)
        if self.jacobian_structure == "diagonal":
            return jax.jvp(affine, (x,), (jnp.ones_like(x),))
        jac = jax.jacfwd(affine, holomorphic=jnp.iscomplexobj(x))(x)
        return affine(x), tuple(
            jnp.diagonal(J.reshape(-1, x.shape[0], x.shape[0]), axis1=-2, axis2=-1)[0]
            for J in jac
        )


class AbstractAffineNeuron(AbstractLiquidNeuron):
    r"""A neuron written as $f(x, u) = A(x, u) \odot x + b(x, u)$ with its input-only
    terms hoisted: subclasses define [`drive`][lrc_toolkit.AbstractLiquidNeuron.drive]
    and [`affine_form`][lrc_toolkit.AbstractAffineNeuron.affine_form]; the vector
    field follows. All the built-in liquid and gated neurons have this form, which
    also gives them the semi-implicit step
    [`SemiImplicitEuler`][lrc_toolkit.SemiImplicitEuler].
    """

    @abc.abstractmethod
    def affine_form(
        self, x: Inexact[Array, " D"], drive: PyTree[ArrayLike]
    ) -> tuple[Inexact[Array, " D"], Inexact[Array, " D"]]:
        """The pair `(A, b)` with $f(x, u) = A \\odot x + b$, from `drive = drive(u)`."""

    def driven_vector_field(
        self, x: Inexact[Array, " D"], drive: PyTree[ArrayLike]
    ) -> Inexact[Array, " D"]:
        A, b = self.affine_form(x, drive)
        return A * x + b

    def field_and_diagonal(self, x, drive):
        # f = A x + b, so df_i/dx_i = A_i + x_i dA_i/dx_i + db_i/dx_i.
        if self.jacobian_structure == "block":
            return super().field_and_diagonal(x, drive)
        (A, b), (dA, db) = self.affine_and_diagonal(x, drive)
        return A * x + b, A + x * dA + db

    def vector_field(
        self, x: Inexact[Array, " D"], u: Inexact[Array, " P"]
    ) -> Inexact[Array, " D"]:
        return self.driven_vector_field(x, self.drive(u))
