r"""Closed-form continuous-time (CfC) neurons and their closed-form discretisation.

A CfC cell (Hasani et al., 2022) is not given by a vector field but by a closed-form
solution: from the state $x$ and the input $u$ held over a step of length $t$,

$$
x(t) = \mathrm{ff}_1 \odot \big(1 - \sigma(a\,t + b)\big)
     + \sigma(a\,t + b) \odot \mathrm{ff}_2
$$

with four heads $\mathrm{ff}_1, \mathrm{ff}_2, a, b$ computed from $(u, x)$. The
discretisation [`ClosedForm`][lrc_toolkit.ClosedForm] evaluates this map; the
neurons' `vector_field` is its time derivative at $t = 0$ (see
`AbstractCfC.vector_field`).
"""

import abc
import math
from typing import ClassVar, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, Real

from .._checks import check_choice, check_integer
from .._discretise import AbstractDiscretisation, ClosedForm
from ._init import check_sizes, default_float, uniform
from .base import AbstractLiquidNeuron


_MODES = ("default", "no_gate")
_ACTIVATIONS = {
    # The names and definitions of `ncps.torch.CfCCell` (GELU is the exact one).
    "lecun_tanh": lambda z: 1.7159 * jnp.tanh(0.666 * z),
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
    "gelu": lambda z: jax.nn.gelu(z, approximate=False),
}


def _check_options(state_size, input_size, mode, activation, units, layers) -> None:
    check_sizes(state_size, input_size)
    check_integer("backbone_units", units)
    check_integer("backbone_layers", layers, minimum=0, note=" (0: no backbone)")
    check_choice("mode", mode, _MODES)
    check_choice("backbone_activation", activation, _ACTIVATIONS)


def _linear(key, fan_out: int, fan_in: int, dtype) -> tuple[Array, Array]:
    """A weight drawn Glorot-uniform (as `ncps` does) and a bias uniform in
    $\\pm 1/\\sqrt{\\text{fan\\_in}}$ (PyTorch's `nn.Linear` default)."""
    kw, kb = jr.split(key)
    limit = math.sqrt(6 / (fan_in + fan_out))
    bound = 1 / math.sqrt(fan_in)
    return (
        uniform(kw, (fan_out, fan_in), -limit, limit, dtype),
        uniform(kb, (fan_out,), -bound, bound, dtype),
    )


def _heads(key, state_size: int, fan_in: int, dtype) -> tuple[Array, Array]:
    """The four heads $\\mathrm{ff}_1, \\mathrm{ff}_2$, $a$ (`time_a`), $b$
    (`time_b`), stacked: weights `(4, D, fan_in)`, biases `(4, D)`."""
    pairs = [_linear(k, state_size, fan_in, dtype) for k in jr.split(key, 4)]
    return jnp.stack([w for w, _ in pairs]), jnp.stack([b for _, b in pairs])


def _init_network(
    cell,
    state_size,
    input_size,
    mode,
    activation,
    units,
    layers,
    dtype,
    key,
    *,
    first_width,
):
    """Check the options and set `cell`'s sizes, options, backbone (Glorot weights,
    PyTorch biases; its first layer `first_width` wide) and heads. Returns the
    dtype and one more key (for a cell's own extra parameters)."""
    _check_options(state_size, input_size, mode, activation, units, layers)
    dtype = default_float(dtype)
    keys = jr.split(key, layers + 2)
    widths = [first_width] + [units] * layers
    cell.backbone = tuple(
        _linear(k, fan_out, fan_in, dtype)
        for k, fan_in, fan_out in zip(keys[:layers], widths[:-1], widths[1:])
    )
    cell.head_weight, cell.head_bias = _heads(
        keys[layers], state_size, widths[-1], dtype
    )
    cell.state_size, cell.input_size = state_size, input_size
    cell.mode, cell.backbone_activation = mode, activation
    return dtype, keys[layers + 1]


class AbstractCfC(AbstractLiquidNeuron):
    r"""A closed-form continuous-time neuron: four heads and the CfC interpolation.

    A subclass computes the pre-activations of the four heads from the state and the
    precomputed [`drive`][lrc_toolkit.AbstractLiquidNeuron.drive] in
    `preactivations`; this class turns them
    into $\mathrm{ff}_1 = \tanh(\cdot)$, $\mathrm{ff}_2 = \tanh(\cdot)$, $a$, $b$ and
    gives the closed-form step and its time derivative.

    **Fields and class attributes:**

    - `mode`: `"default"`, $x(t) = \mathrm{ff}_1 \odot (1 - g) + g \odot
        \mathrm{ff}_2$, or `"no_gate"`, $x(t) = \mathrm{ff}_1 + g \odot
        \mathrm{ff}_2$, with $g = \sigma(a\,t + b)$ (the modes of
        `ncps.torch.CfCCell`; its `"pure"` mode is not provided).
    """

    mode: eqx.AbstractVar[Literal["default", "no_gate"]]

    @abc.abstractmethod
    def preactivations(
        self, x: Float[ArrayLike, " D"], drive: Float[ArrayLike, "..."]
    ) -> Float[Array, "4 D"]:
        """The pre-activations of the heads $\\mathrm{ff}_1, \\mathrm{ff}_2, a, b$
        (stacked in this order) at state `x`, from `drive = drive(u)`."""

    def default_discretisation(self) -> AbstractDiscretisation:
        """[`ClosedForm()`][lrc_toolkit.ClosedForm]: a CfC is defined by its step."""
        return ClosedForm()

    def _gate_and_heads(self, x, drive):
        pre = self.preactivations(x, drive)
        return jnp.tanh(pre[0]), jnp.tanh(pre[1]), pre[2], pre[3]

    def closed_form_step(
        self,
        x: Float[ArrayLike, " D"],
        drive: Float[ArrayLike, "..."],
        dt: Real[ArrayLike, ""] | Real[ArrayLike, " D"],
    ) -> Float[Array, " D"]:
        r"""The state after a step of length $\Delta t$ with the input held constant:

        $$x(\Delta t) = \mathrm{ff}_1 \odot (1 - g) + g \odot \mathrm{ff}_2,\qquad
        g = \sigma(a\,\Delta t + b)$$

        (`"default"` mode; `"no_gate"`: $\mathrm{ff}_1 + g \odot \mathrm{ff}_2$), with
        the heads evaluated at the state $x$ at the start of the step.

        **Arguments:**

        - `x`: the state at the start of the step, shape `(state_size,)`.
        - `drive`: `self.drive(u)` for the input held over the step.
        - `dt`: the step length $\Delta t$ (the `timespans` of `ncps`), or one per
            state component (a [`TimeScaled`][lrc_toolkit.TimeScaled] CfC's
            $\Delta_i \Delta t$).

        **Returns:**

        The state at the end of the step, with the shape and dtype of `x`.
        """
        ff1, ff2, a, b = self._gate_and_heads(x, drive)
        g = jax.nn.sigmoid(a * jnp.asarray(dt).astype(x.dtype) + b)
        if self.mode == "no_gate":
            return ff1 + g * ff2
        return ff1 * (1 - g) + g * ff2

    def driven_vector_field(
        self, x: Float[ArrayLike, " D"], drive: Float[ArrayLike, "..."]
    ) -> Float[Array, " D"]:
        ff1, ff2, a, b = self._gate_and_heads(x, drive)
        s = jax.nn.sigmoid(b)
        rate = a * s * (1 - s)
        if self.mode == "no_gate":
            return rate * ff2
        return rate * (ff2 - ff1)

    def vector_field(
        self, x: Float[ArrayLike, " D"], u: Float[ArrayLike, " P"]
    ) -> Float[Array, " D"]:
        r"""The time derivative of the closed-form trajectory at $t = 0$:

        $$f(x, u) = \frac{d}{dt}\, x(t)\Big|_{t=0}
        = a \odot \sigma'(b) \odot (\mathrm{ff}_2 - \mathrm{ff}_1)$$

        (`"no_gate"`: $a \odot \sigma'(b) \odot \mathrm{ff}_2$), with
        $\sigma' = \sigma (1 - \sigma)$ and the heads evaluated at $(u, x)$.

        This is what the ODE and Euler views of a CfC integrate, and it is
        **not** the CfC recurrence: the closed-form trajectory does not start at the
        state it was computed from ($x(0) = \mathrm{ff}_1 \odot (1 - \sigma(b)) +
        \sigma(b) \odot \mathrm{ff}_2 \neq x$ in general; the cell jumps to a learned
        point, then moves along the trajectory). What holds is
        $\Phi(x, u; \Delta t) = \Phi(x, u; 0) + \Delta t\, f(x, u) + O(\Delta t^2)$
        for the [`ClosedForm`][lrc_toolkit.ClosedForm] map $\Phi$. Evaluate a CfC as
        its authors define it with `discretisation=ClosedForm()`; the vector field
        serves the Jacobian-structure check and views that need one.
        """
        return self.driven_vector_field(x, self.drive(u))


class CfC(AbstractCfC):
    r"""The closed-form continuous-time cell of Hasani et al. (2022), in its original
    (dense) form, as `ncps.torch.CfCCell`.

    A backbone maps the concatenated input and state to features
    $h = \phi(W_{\mathrm{bb}} [u; x] + c_{\mathrm{bb}})$ (`backbone_layers` such
    layers; $\phi$ the `backbone_activation`, LeCun's $1.7159 \tanh(0.666\,z)$ by
    default), and four linear heads read the features:

    $$
    \begin{aligned}
    \mathrm{ff}_1 &= \tanh(W_1 h + b_1), \quad \mathrm{ff}_2 = \tanh(W_2 h + b_2),
    \quad a = W_a h + b_a, \quad b = W_b h + b_b,\\
    x_t &= \mathrm{ff}_1 \odot \big(1 - \sigma(a\,\Delta t + b)\big)
      + \sigma(a\,\Delta t + b) \odot \mathrm{ff}_2 .
    \end{aligned}
    $$

    Every head sees the whole state through the backbone, so the step Jacobian is
    dense (`jacobian_structure = "dense"`): evaluate it with `Sequential()`, or in
    parallel with `ParallelNewton(method="dense")` ($O(TD^3)$) or `"quasi"`. For an exact $O(TD)$
    parallel solve use [`DiagonalCfC`][lrc_toolkit.DiagonalCfC]. Always pass
    `discretisation=ClosedForm()` to evaluate the cell as published.

    The weights have the layout of PyTorch's `nn.Linear` (`(out, in)`, the input
    columns first), so an `ncps` cell's weights load one to one:
    `backbone[i]` = (weight, bias) of the i-th `nn.Linear` of its `backbone`, and
    `head_weight = stack([ff1.weight, ff2.weight, time_a.weight, time_b.weight])`.

    ??? cite "References"

        ```bibtex
        @article{hasani2022closed,
          title={Closed-form continuous-time neural networks},
          author={Hasani, Ramin and Lechner, Mathias and Amini, Alexander and
                  Liebenwein, Lucas and Ray, Aaron and Tschaikowski, Max and
                  Teschl, Gerald and Rus, Daniela},
          journal={Nature Machine Intelligence}, volume={4}, pages={992--1003},
          year={2022}
        }
        ```
    """

    state_size: int = eqx.field(static=True)
    input_size: int = eqx.field(static=True)
    mode: Literal["default", "no_gate"] = eqx.field(static=True)
    backbone_activation: str = eqx.field(static=True)
    jacobian_structure: ClassVar[Literal["dense"]] = "dense"

    backbone: tuple[tuple[Float[Array, "_ _"], Float[Array, " _"]], ...]
    head_weight: Float[Array, "4 D F"]
    head_bias: Float[Array, "4 D"]

    def __init__(
        self,
        state_size: int,
        input_size: int,
        *,
        mode: str = "default",
        backbone_activation: str = "lecun_tanh",
        backbone_units: int = 128,
        backbone_layers: int = 1,
        dtype=None,
        key: PRNGKeyArray,
    ):
        r"""**Arguments:**

        - `state_size`: the number of neurons $D$.
        - `input_size`: the number of input channels $P$.
        - `mode`: `"default"` (gated interpolation) or `"no_gate"`.
        - `backbone_activation`: `"lecun_tanh"` (default), `"tanh"`, `"relu"`,
            `"silu"` or `"gelu"`.
        - `backbone_units`: the width of each backbone layer (default 128, as
            `ncps`).
        - `backbone_layers`: the number of backbone layers (default 1); with 0 the
            heads read $[u; x]$ directly.
        - `dtype`: the floating dtype of the parameters (default: JAX's default).
        - `key`: a `jax.random.key`. Weights are Glorot-uniform (as `ncps`), biases
            uniform in $\pm 1/\sqrt{\text{fan-in}}$ (PyTorch's default).
        """
        _init_network(
            self,
            state_size,
            input_size,
            mode,
            backbone_activation,
            backbone_units,
            backbone_layers,
            dtype,
            key,
            first_width=input_size + state_size,
        )

    def drive(
        self, u: Float[ArrayLike, " P"]
    ) -> Float[Array, " _"] | Float[Array, "4 D"]:
        """The input part of the first linear map: $W^{(u)} u + c$, where $W^{(u)}$
        are the input columns of the first backbone layer (or of the heads when
        `backbone_layers=0`)."""
        P = self.input_size
        if self.backbone:
            weight, bias = self.backbone[0]
            return weight[:, :P] @ u + bias
        return self.head_weight[..., :P] @ u + self.head_bias

    def preactivations(self, x, drive):
        P = self.input_size
        if not self.backbone:
            return drive + self.head_weight[..., P:] @ x
        act = _ACTIVATIONS[self.backbone_activation]
        h = act(drive + self.backbone[0][0][:, P:] @ x)
        for weight, bias in self.backbone[1:]:
            h = act(weight @ h + bias)
        return self.head_weight @ h + self.head_bias


class DiagonalCfC(AbstractCfC):
    r"""A closed-form continuous-time cell whose heads see the state only through
    each neuron's own component, so that its step Jacobian is diagonal.

    The backbone reads the input alone, $h = \phi(W_{\mathrm{bb}} u + c_{\mathrm{bb}})$,
    and each head adds a diagonal (elementwise) state term:

    $$
    \begin{aligned}
    \mathrm{ff}_1 &= \tanh(W_1 h + w_1 \odot x + b_1), \quad
    \mathrm{ff}_2 = \tanh(W_2 h + w_2 \odot x + b_2),\\
    a &= W_a h + w_a \odot x + b_a, \quad b = W_b h + w_b \odot x + b_b,\\
    x_t &= \mathrm{ff}_1 \odot \big(1 - \sigma(a\,\Delta t + b)\big)
      + \sigma(a\,\Delta t + b) \odot \mathrm{ff}_2 .
    \end{aligned}
    $$

    The candidate heads' state weights are bounded, $w_k = \tanh(\theta_k)$ for
    $k = 1, 2$ (`head_state` holds $\theta_1, \theta_2, w_a, w_b$): each candidate
    head is then a contraction in its own state, with memory but without the
    bistability of $\tanh(w x + c)$ for $w > 1$. The head weights are held as
    $\sqrt{F}\,W$ (`head_weight`, $F$ the heads' input width) and applied as
    $W$, `head_weight` divided by $\sqrt{F}$: the same function, but Adam's steps, which
    have the same size for every parameter, move $W$ relative to its scale
    $1/\sqrt{F}$ (an "equalised learning rate"). `head_weights()` and
    `state_weights()` give $W$ and $w$. Both changes were measured against a
    slow start at the CLI's learning rate (`benchmarks/slow_start`; see the
    initialisation below).

    Neuron $i$'s next state depends on $x_i$ alone (and on all inputs), so
    `jacobian_structure = "diagonal"`: the parallel solver's Newton iteration is
    exact at $O(TD)$ work per iteration, as for the LrcSSM cell. This is the same
    restriction that turns a GRU into the diagonal [`GRUNeuron`][lrc_toolkit.GRUNeuron].
    Everything that depends on the input alone (the backbone and $W h + b$) is
    computed once per step in [`drive`][lrc_toolkit.AbstractLiquidNeuron.drive].
    Always pass `discretisation=ClosedForm()` to evaluate the cell as a CfC.
    """

    state_size: int = eqx.field(static=True)
    input_size: int = eqx.field(static=True)
    mode: Literal["default", "no_gate"] = eqx.field(static=True)
    backbone_activation: str = eqx.field(static=True)
    jacobian_structure: ClassVar[Literal["diagonal"]] = "diagonal"

    backbone: tuple[tuple[Float[Array, "_ _"], Float[Array, " _"]], ...]
    head_weight: Float[Array, "4 D F"]
    head_state: Float[Array, "4 D"]
    head_bias: Float[Array, "4 D"]

    def __init__(
        self,
        state_size: int,
        input_size: int,
        *,
        mode: str = "default",
        backbone_activation: str = "lecun_tanh",
        backbone_units: int = 128,
        backbone_layers: int = 1,
        dtype=None,
        key: PRNGKeyArray,
    ):
        r"""**Arguments:**

        - `state_size`: the number of neurons $D$.
        - `input_size`: the number of input channels $P$.
        - `mode`: `"default"` (gated interpolation) or `"no_gate"`.
        - `backbone_activation`: `"lecun_tanh"` (default), `"tanh"`, `"relu"`,
            `"silu"` or `"gelu"`.
        - `backbone_units`: the width of each (input-only) backbone layer
            (default 128).
        - `backbone_layers`: the number of backbone layers (default 1); with 0 the
            heads read $u$ directly.
        - `dtype`: the floating dtype of the parameters (default: JAX's default).
        - `key`: a `jax.random.key`. Weights $W$ are Glorot-uniform, biases
            uniform in $\pm 1/\sqrt{\text{fan-in}}$; the diagonal state weights
            are uniform in $(0, 1)$ for $w_1, w_2$ (memory from the first step, as
            IndRNN's recurrent weights) and in $\pm 1/\sqrt{D}$ for $w_a, w_b$.
        """
        dtype, key = _init_network(
            self,
            state_size,
            input_size,
            mode,
            backbone_activation,
            backbone_units,
            backbone_layers,
            dtype,
            key,
            first_width=input_size,
        )
        # The state enters only through these diagonal weights. For the two
        # candidate heads ff1, ff2 they are uniform in (0, 1), as IndRNN's
        # recurrent weights (Li et al., 2018): each neuron keeps a fraction of its
        # state per step, so the cell starts with memories from one step to many.
        # With weights of +-1/sqrt(D), as the gates of the diagonal gated cells, it
        # started nearly memoryless and stayed at chance on a frequency task
        # (benchmarks/slow_start). The time heads a, b keep +-1/sqrt(D).
        # With the weights held as sqrt(F) W and w_1, w_2 = tanh(theta), a slow
        # start at the CLI's learning rate 3e-3 (validation loss jumping between
        # epochs) became 5 of 6 seeds below 0.9 ln 2 within 3 epochs (2 of 6
        # before; benchmarks/slow_start's task, seeds 0-5).
        k_ff, k_time = jr.split(key)
        bound = 1 / math.sqrt(state_size)
        w_ff = uniform(k_ff, (2, state_size), 0, 1 - 1e-3, dtype)
        self.head_state = jnp.concatenate([
            jnp.arctanh(w_ff), uniform(k_time, (2, state_size), -bound, bound, dtype),
        ])  # fmt: skip
        self.head_weight = self.head_weight * math.sqrt(self.head_weight.shape[-1])

    def head_weights(self) -> Float[Array, "4 D F"]:
        r"""The heads' input weights $W$: `head_weight` divided by $\sqrt{F}$."""
        scale = 1 / math.sqrt(self.head_weight.shape[-1])
        return self.head_weight * jnp.asarray(scale, self.head_weight.dtype)

    def state_weights(self) -> Float[Array, "4 D"]:
        r"""The diagonal state weights $w_1, w_2, w_a, w_b$ of the four heads, with
        $w_{1,2} = \tanh(\theta_{1,2})$."""
        theta = self.head_state
        return jnp.concatenate([jnp.tanh(theta[:2]), theta[2:]])

    def drive(self, u: Float[ArrayLike, " P"]) -> Float[Array, "4 D"]:
        """The input-only part of the four heads, $W h(u) + b$."""
        act = _ACTIVATIONS[self.backbone_activation]
        h = u
        for weight, bias in self.backbone:
            h = act(weight @ h + bias)
        return self.head_weights() @ h + self.head_bias

    def preactivations(self, x, drive):
        return drive + self.state_weights() * x
