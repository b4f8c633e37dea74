import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, ArrayLike, Float, Inexact, PRNGKeyArray, PyTree, Real

from .._checks import check_positive
from .base import AbstractLiquidNeuron


def _logit(p: Array) -> Array:
    return jnp.log(p) - jnp.log1p(-p)


class TimeScaled(AbstractLiquidNeuron):
    r"""Any neuron with a learned time scale per state component: each neuron's
    clock runs at its own rate,

    $$\frac{dx_i}{dt} = \Delta_i\, f_i(x, u), \qquad
    \Delta_i = \Delta_\text{max}\, \sigma(\theta_i) \in (0, \Delta_\text{max}),$$

    so that a discretisation with step $\Delta t$ takes the step $\Delta_i \Delta t$
    in component $i$ (explicit Euler: $x_t = x_{t-1} + \Delta t\,\Delta \odot f$).
    This is how the linear state-space models (S4D, S5, Mamba) learn their memory,
    applied to a non-linear neuron: with $\Delta_i$ spread log-uniformly over
    `scale_range`, some neurons forget within a few samples and others remember
    thousands, whatever the data's sampling rate.

    Rescaling row $i$ of the vector field keeps the Jacobian's structure (diagonal,
    block or dense), the form $f = A \odot x + b$ (with $A \le 0$ if the neuron's
    is) and the hoisted input terms, so every solver, discretisation, time grid and
    streaming step works unchanged, and the gradients with respect to $\theta$ come
    from the same exact adjoint as those of the neuron's own parameters. The bound
    $\Delta_\text{max}$ keeps an explicit step as stable as the wrapped neuron's at
    step $\Delta_\text{max} \Delta t$ however the training moves $\theta$ (for the
    LRC at $\Delta t \le 1$: transition factors in $(0, 1)$).

    **Example:**

    ```python
    neuron = lt.TimeScaled(lt.LRC(16, 2, key=k1), key=k2)
    sol = lt.solve(neuron, jnp.zeros(16), inputs, solver=lt.ParallelNewton())
    neuron.scale          # the 16 learned rates
    ```
    """

    neuron: AbstractLiquidNeuron
    logit: Float[Array, " D"]
    max_scale: float = eqx.field(static=True)

    def __init__(
        self,
        neuron: AbstractLiquidNeuron,
        *,
        scale_range: tuple[float, float] = (1e-3, 0.5),
        max_scale: float = 1.0,
        fast_fraction: float = 0.0,
        key: PRNGKeyArray,
    ):
        r"""**Arguments:**

        - `neuron`: the [`AbstractLiquidNeuron`][lrc_toolkit.AbstractLiquidNeuron]
            to rescale.
        - `scale_range`: `(low, high)` with `0 < low <= high < max_scale`:
            the initial $\Delta_i$ are log-uniform over it (with `low == high`,
            all equal). The default spans memories from a few samples to a few
            thousand for an LRC at $\Delta t = 1$.
        - `max_scale`: the bound $\Delta_\text{max}$ (default 1: no component steps
            further than $\Delta t$).
        - `fast_fraction`: the fraction of the neurons that start at `high` instead
            (the first ones), in `[0, 1]`; default 0. Fast neurons make a layer
            follow its input from the first step: `LrcSSM` uses 1/2, which learned
            a frequency task within 8 epochs on every seed where a log-uniform
            spread alone stalled on two of three (`benchmarks/learning/`).

        The neurons of a block-structured neuron (`jacobian_structure = "block"`,
        `block_size = k`) get one initial scale for their $k$ variables, so that
        their own time-scale ratios are kept; training may then separate them.
        - `key`: a `jax.random.key` for the initial scales.
        """
        if not isinstance(neuron, AbstractLiquidNeuron):
            raise TypeError(
                "`neuron` must be an `lrc_toolkit.AbstractLiquidNeuron`, got "
                f"{type(neuron).__name__}."
            )
        check_positive("max_scale", max_scale)
        try:
            low, high = (float(v) for v in scale_range)
        except (TypeError, ValueError):
            raise ValueError(
                f"`scale_range` must be a pair (low, high), got {scale_range!r}."
            ) from None
        if not 0 < low <= high < max_scale:
            raise ValueError(
                "`scale_range` must satisfy 0 < low <= high < max_scale = "
                f"{max_scale}, got {scale_range!r}."
            )
        if not (
            isinstance(fast_fraction, int | float)
            and not isinstance(fast_fraction, bool)
            and 0 <= fast_fraction <= 1
        ):
            raise ValueError(
                f"`fast_fraction` must be a number in [0, 1], got {fast_fraction!r}."
            )
        dtype = jnp.finfo(_real_dtype(neuron)).dtype
        D = neuron.state_size
        k = getattr(neuron, "block_size", 1)
        k = k if neuron.jacobian_structure == "block" and isinstance(k, int) else 1
        units = D // k if k >= 1 and D % k == 0 else D
        r = jr.uniform(key, (units,), dtype)
        scale = jnp.exp(math.log(low) + r * (math.log(high) - math.log(low)))
        scale = scale.at[: round(fast_fraction * units)].set(high)
        scale = jnp.repeat(scale, D // units)
        self.neuron = neuron
        self.logit = _logit(scale / max_scale)
        self.max_scale = float(max_scale)

    @property
    def state_size(self) -> int:
        return self.neuron.state_size

    @property
    def input_size(self) -> int:
        return self.neuron.input_size

    @property
    def jacobian_structure(self):
        return self.neuron.jacobian_structure

    @property
    def block_size(self):
        return getattr(self.neuron, "block_size", 1)

    @property
    def state_dtype(self):
        return getattr(self.neuron, "state_dtype", _real_dtype(self.neuron))

    @property
    def scale(self) -> Float[Array, " D"]:
        r"""The rates $\Delta_i = \Delta_\text{max}\,\sigma(\theta_i)$."""
        return self.max_scale * jax.nn.sigmoid(self.logit)

    def _scaled(self, v: Inexact[Array, " D"]) -> Inexact[Array, " D"]:
        return self.scale.astype(v.dtype) * v

    def vector_field(self, x, u):
        return self._scaled(self.neuron.vector_field(x, u))

    def drive(self, u: Inexact[Array, " P"]) -> PyTree[Array]:
        return self.neuron.drive(u)

    def driven_vector_field(self, x, drive):
        return self._scaled(self.neuron.driven_vector_field(x, drive))

    def affine_form(self, x, drive):
        A, b = self.neuron.affine_form(x, drive)
        return self._scaled(A), self._scaled(b)

    def field_and_diagonal(self, x, drive):
        f, F = self.neuron.field_and_diagonal(x, drive)
        return self._scaled(f), self._scaled(F)

    def affine_and_diagonal(self, x, drive):
        affine, diagonals = self.neuron.affine_and_diagonal(x, drive)
        return tuple(
            tuple(self._scaled(v) for v in pair) for pair in (affine, diagonals)
        )

    def closed_form_step(
        self, x: Inexact[Array, " D"], drive: PyTree[Array], dt: Real[ArrayLike, ""]
    ) -> Inexact[Array, " D"]:
        """For a closed-form cell (`CfC`): its step over $\\Delta_i \\Delta t$ in
        component $i$."""
        return self.neuron.closed_form_step(
            x, drive, self.scale * jnp.asarray(dt, self.scale.dtype)
        )

    def default_discretisation(self):
        """The wrapped neuron's."""
        return self.neuron.default_discretisation()


def _real_dtype(neuron: AbstractLiquidNeuron):
    """The floating dtype of a neuron's parameters (its first inexact leaf)."""
    for leaf in jax.tree_util.tree_leaves(eqx.filter(neuron, eqx.is_inexact_array)):
        return jnp.finfo(leaf.dtype).dtype
    return jnp.dtype(jax.dtypes.canonicalize_dtype(float))
