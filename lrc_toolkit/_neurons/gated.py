"""Gated recurrent cells (GRU, MGU, LSTM) in diagonal form, as liquid neurons.

Any cell $x_t = q_t \\odot x_{t-1} + s_t$ whose gates see the state only through
the neuron's own component $x_i$ (and all inputs) has a diagonal state Jacobian, and
reads as the ODE $\\frac{dx}{dt} = (q - 1) \\odot x + s$: explicit Euler at
$\\Delta t = 1$ gives back the discrete cell. The recurrent weight matrices $U$ of
the usual cells become vectors $w$ (diagonal matrices).
"""

import math
from typing import ClassVar, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

from ._init import check_sizes, default_float, uniform
from .base import AbstractAffineNeuron


class _AbstractGated(AbstractAffineNeuron):
    """A diagonal gated cell: per gate `g` in `gates` an input matrix `W_g` (D, P),
    a diagonal recurrent weight `w_g` (D,) and a bias `b_g` (D,), all drawn
    uniformly in $\\pm 1/\\sqrt{D}$ (the LrcSSM reference initialisation); a
    subclass declares them and writes `affine_form` on the gates' input parts."""

    state_size: int = eqx.field(static=True)
    input_size: int = eqx.field(static=True)
    jacobian_structure: ClassVar[Literal["diagonal"]] = "diagonal"
    gates: eqx.AbstractClassVar[tuple[str, ...]]

    def __init__(
        self, state_size: int, input_size: int, *, dtype=None, key: PRNGKeyArray
    ):
        r"""**Arguments:**

        - `state_size`: the number of neurons $D$.
        - `input_size`: the number of input channels $P$.
        - `dtype`: the floating dtype of the parameters (default: JAX's default).
        - `key`: a `jax.random.key`; every parameter is drawn uniformly in
            $\pm 1/\sqrt{D}$.
        """
        check_sizes(state_size, input_size)
        dtype = default_float(dtype)
        D, P = state_size, input_size
        r = 1 / math.sqrt(D)
        keys = iter(jr.split(key, 3 * len(self.gates)))
        for gate in self.gates:
            for name, shape in (
                (f"W_{gate}", (D, P)),
                (f"w_{gate}", (D,)),
                (f"b_{gate}", (D,)),
            ):
                setattr(self, name, uniform(next(keys), shape, -r, r, dtype))
        self.state_size = state_size
        self.input_size = input_size

    def drive(self, u: Float[Array, " P"]) -> tuple[Array, ...]:
        """The input parts of the gates' pre-activations, $W u + b$, in the order
        of `gates`."""
        return tuple(
            getattr(self, f"W_{g}") @ u + getattr(self, f"b_{g}") for g in self.gates
        )


class GRUNeuron(_AbstractGated):
    r"""A gated recurrent unit with diagonal recurrent weights, as an ODE.

    $$
    \begin{aligned}
    z &= \sigma(W_z u + w_z \odot x + b_z), \qquad
    r = \sigma(W_r u + w_r \odot x + b_r),\\
    c &= \tanh\big(W_c u + w_c \odot (r \odot x) + b_c\big), \qquad
    \frac{dx}{dt} = z \odot (c - x).
    \end{aligned}
    $$

    Explicit Euler at $\Delta t = 1$ gives the GRU update
    $x_t = (1 - z) \odot x_{t-1} + z \odot c$ (Cho et al., 2014), with the recurrent
    matrices $U_z, U_r, U_c$ restricted to diagonals $w_z, w_r, w_c$, so that each
    neuron sees the state only through its own component and the state Jacobian is
    diagonal. The input terms $W u + b$ are hoisted into
    [`drive`][lrc_toolkit.AbstractLiquidNeuron.drive]. In affine form
    $A = -z$, $b = z \odot c$.
    """

    gates: ClassVar[tuple[str, ...]] = ("z", "r", "c")
    W_z: Float[Array, "D P"]
    w_z: Float[Array, " D"]
    b_z: Float[Array, " D"]
    W_r: Float[Array, "D P"]
    w_r: Float[Array, " D"]
    b_r: Float[Array, " D"]
    W_c: Float[Array, "D P"]
    w_c: Float[Array, " D"]
    b_c: Float[Array, " D"]

    def affine_form(self, x, drive):
        d_z, d_r, d_c = drive
        z = jax.nn.sigmoid(d_z + self.w_z * x)
        r = jax.nn.sigmoid(d_r + self.w_r * x)
        c = jnp.tanh(d_c + self.w_c * (r * x))
        return -z, z * c


class MGUNeuron(_AbstractGated):
    r"""A minimal gated unit with diagonal recurrent weights, as an ODE.

    The MGU (Zhou et al., 2016) is a GRU whose single forget gate $f$ plays the
    roles of both the update and the reset gate:

    $$
    \begin{aligned}
    f &= \sigma(W_f u + w_f \odot x + b_f), \qquad
    c = \tanh\big(W_c u + w_c \odot (f \odot x) + b_c\big),\\
    \frac{dx}{dt} &= f \odot (c - x).
    \end{aligned}
    $$

    Explicit Euler at $\Delta t = 1$ gives the MGU update
    $x_t = (1 - f) \odot x_{t-1} + f \odot c$ with diagonal recurrent weights, so
    the state Jacobian is diagonal. In affine form $A = -f$, $b = f \odot c$.
    """

    gates: ClassVar[tuple[str, ...]] = ("f", "c")
    W_f: Float[Array, "D P"]
    w_f: Float[Array, " D"]
    b_f: Float[Array, " D"]
    W_c: Float[Array, "D P"]
    w_c: Float[Array, " D"]
    b_c: Float[Array, " D"]

    def affine_form(self, x, drive):
        d_f, d_c = drive
        f = jax.nn.sigmoid(d_f + self.w_f * x)
        c = jnp.tanh(d_c + self.w_c * (f * x))
        return -f, f * c


class LSTMNeuron(_AbstractGated):
    r"""A long short-term memory cell in cell-state-only diagonal form, as an ODE.

    The state is the cell state $x = c$. The gates see it through the neuron's own
    squashed cell state $\tanh(x_i)$ (the hidden state an LSTM emits with its output
    gate open) and see all inputs:

    $$
    \begin{aligned}
    i &= \sigma(W_i u + w_i \odot \tanh x + b_i), \qquad
    f = \sigma(W_f u + w_f \odot \tanh x + b_f),\\
    g &= \tanh(W_g u + w_g \odot \tanh x + b_g), \qquad
    \frac{dx}{dt} = (f - 1) \odot x + i \odot g.
    \end{aligned}
    $$

    Explicit Euler at $\Delta t = 1$ gives the LSTM cell update
    $c_t = f \odot c_{t-1} + i \odot g$.

    Why this form: a standard LSTM carries the pair $(c, h)$ with
    $h_t = o_t \odot \tanh(c_t)$, and its step Jacobian w.r.t. $(c, h)$ is a
    $2 \times 2$ block of diagonals, not diagonal, so the plain diagonal Newton scan
    would not apply. Dropping $h$ from the state (and the output gate $o$, whose
    role is played by the readout that follows the cell in an LrcSSM block) keeps the Jacobian diagonal. In affine
    form $A = f - 1$, $b = i \odot g$.
    """

    gates: ClassVar[tuple[str, ...]] = ("i", "f", "g")
    W_i: Float[Array, "D P"]
    w_i: Float[Array, " D"]
    b_i: Float[Array, " D"]
    W_f: Float[Array, "D P"]
    w_f: Float[Array, " D"]
    b_f: Float[Array, " D"]
    W_g: Float[Array, "D P"]
    w_g: Float[Array, " D"]
    b_g: Float[Array, " D"]

    def affine_form(self, x, drive):
        d_i, d_f, d_g = drive
        h = jnp.tanh(x)
        i = jax.nn.sigmoid(d_i + self.w_i * h)
        f = jax.nn.sigmoid(d_f + self.w_f * h)
        g = jnp.tanh(d_g + self.w_g * h)
        return f - 1, i * g
