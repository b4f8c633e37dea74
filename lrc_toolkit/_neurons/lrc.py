import math
from typing import ClassVar, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

from .._checks import check_choice
from ._init import centred_normal, check_sizes, default_float, elastance, uniform
from .base import AbstractAffineNeuron


_ELASTANCES = ("asymmetric", "symmetric", "none")
_INITS = ("responsive", "reference", "biophysical")
_STATE_DEPENDENCE = ("full", "update", "none")


class LRC(AbstractAffineNeuron):
    r"""The diagonal liquid-resistance liquid-capacitance neuron of LrcSSM.

    For state $x \in \mathbb{R}^D$ and input $u \in \mathbb{R}^P$, with $\sigma$ the
    logistic sigmoid and $\odot$ the elementwise product,

    $$
    \begin{aligned}
    s_u &= \sigma(\sigma_u \odot (u - \mu_u)), \qquad s_x = \sigma(\sigma_x \odot (x - \mu_x)),\\
    f &= g_\text{leak} + W_u s_u + w_x \odot s_x, \qquad
    z = g_\text{leak} + H_u s_u + h_x \odot s_x,\\
    \frac{dx}{dt} &= \epsilon \odot \big(-\sigma(f) \odot x + e_\text{leak} \odot \tanh(z)\big)
    = A(x, u) \odot x + b(x, u),
    \end{aligned}
    $$

    with the elastance $\epsilon$ one of

    - `"asymmetric"`: $\epsilon = \sigma(\kappa \odot x + \beta)$ (the default),
    - `"symmetric"`: $\epsilon = \sigma(\kappa \odot x + \beta + |s|) - \sigma(\kappa \odot x + \beta - |s|)$
        (the absolute value keeps $\epsilon \ge 0$, so that $A \le 0$),
    - `"none"`: $\epsilon = 1$ (the STC neuron, see [`STC`][lrc_toolkit.STC]),

    and, with `input_elastance=True`, $\kappa \odot x + K_u u + \beta$ in place of
    $\kappa \odot x + \beta$. Each $\frac{dx_i}{dt}$ depends on its own $x_i$ and on
    all of $u$, so the Jacobian is diagonal.

    ??? cite "Reference"

        ```bibtex
        @inproceedings{farsang2025parallelization,
          title={Parallelization of Non-linear State-Space Models: Scaling Up
                 Liquid-Resistance Liquid-Capacitance Networks for Efficient
                 Sequence Modeling},
          author={Farsang, M\'onika and Hasani, Ramin and Rus, Daniela and
                  Grosu, Radu},
          booktitle={NeurIPS},
          year={2025}
        }
        ```
    """

    state_size: int = eqx.field(static=True)
    input_size: int = eqx.field(static=True)
    elastance: str = eqx.field(static=True)
    state_dependence: str = eqx.field(static=True)
    rho: float | None = eqx.field(static=True)
    jacobian_structure: ClassVar[Literal["diagonal"]] = "diagonal"

    sigma_u: Float[Array, " P"]
    mu_u: Float[Array, " P"]
    sigma_x: Float[Array, " D"]
    mu_x: Float[Array, " D"]
    g_leak: Float[Array, " D"]
    W_u: Float[Array, "D P"]
    w_x: Float[Array, " D"]
    H_u: Float[Array, "D P"]
    h_x: Float[Array, " D"]
    e_leak: Float[Array, " D"]
    kappa: Float[Array, " D"] | None
    beta: Float[Array, " D"] | None
    half_width: Float[Array, " D"] | None
    K_u: Float[Array, "D P"] | None

    def __init__(
        self,
        state_size: int,
        input_size: int,
        *,
        elastance: str = "asymmetric",
        input_elastance: bool = False,
        init: str = "reference",
        state_dependence: str = "full",
        rho: float | None = None,
        dtype=None,
        key: PRNGKeyArray,
    ):
        r"""**Arguments:**

        - `state_size`: the number of neurons $D$.
        - `input_size`: the number of input channels $P$.
        - `elastance`: `"asymmetric"`, `"symmetric"` or `"none"` (see above).
        - `input_elastance`: whether the elastance also sees the input, $K_u u$.
        - `init`: `"responsive"` makes the state follow its input from
            the start: input synapses with slopes $\sigma_u \in [1, 3]$ and centres
            $\mu_u \in [-\frac12, \frac12]$ (the range of normalised inputs),
            input weights $W_u, H_u \sim N(0, 4/P)$ with each row's mean removed,
            reversal potentials $|e_\text{leak}| \in [0.5, 1.5]$ of random sign,
            a symmetric elastance's half-width in $[1, 2]$, the rest as
            `"reference"`. Under $N(0, 1)$ inputs at $\Delta t = 1$ the
            states then move with a standard deviation of about 0.4 over time,
            against about 0.002 for `"reference"`, whose input synapses are nearly
            flat ($|\sigma_u| \le 1/\sqrt{D}$): a model built from the reference
            initialisation sits at chance for many epochs (measured in
            `benchmarks/slow_start`). `"reference"` (default) draws every parameter
            uniformly in $\pm 1/\sqrt{D}$ (the LrcSSM reference code, for
            reproducing the paper); `"biophysical"` uses the
            ranges of the original LRC/LTC papers ($g_\text{leak} \in [0.001, 1]$,
            $e_\text{leak} \in [-0.2, 0.2]$, synaptic weights in $[0.001, 1]$,
            $\sigma \in [3, 8]$, $\mu \in [0.3, 0.8]$).
        - `state_dependence`: the ablation switch of the paper's Table 10.
            `"full"` is $A(x,u), b(x,u)$; `"update"` removes the self-synapse from
            the forget conductance, $A(u), b(x,u)$ (with elastance `"none"`);
            `"none"` removes it from both, $A(u), b(u)$.
        - `rho`: the optional $\rho$-clamp of the paper's Lemma 1 / Theorem 1, a
            radius $0 < \rho < 1$. The forget term becomes
            $A = -(1 - \rho) - \rho\,\sigma(f) \odot \epsilon$, so that the frozen
            Euler transition factor at $\Delta t = 1$ is
            $1 + A = \rho\,(1 - \sigma(f)\,\epsilon) \in (0, \rho]$ (for a
            non-negative elastance). Default `None`: no clamp.
        - `dtype`: the floating dtype of the parameters (default: JAX's default).
        - `key`: a `jax.random.key` for the initialisation.
        """
        check_choice("elastance", elastance, _ELASTANCES)
        check_choice("init", init, _INITS)
        check_choice("state_dependence", state_dependence, _STATE_DEPENDENCE)
        if state_dependence != "full" and elastance != "none":
            raise ValueError(
                "The ablations `state_dependence='update'`/`'none'` make A or b "
                "independent of the state, which a state-dependent elastance would "
                "undo: use them with `elastance='none'`."
            )
        if input_elastance and elastance == "none":
            raise ValueError(
                "`input_elastance=True` needs an elastance other than 'none'."
            )
        check_sizes(state_size, input_size)
        dtype = default_float(dtype)
        D, P = state_size, input_size
        keys = iter(jr.split(key, 16))
        r = 1 / math.sqrt(D)

        def ref(shape):
            return uniform(next(keys), shape, -r, r, dtype)

        if init == "responsive":
            self.sigma_u = uniform(next(keys), (P,), 1, 3, dtype)
            self.mu_u = uniform(next(keys), (P,), -0.5, 0.5, dtype)
            self.sigma_x, self.mu_x = ref((D,)), ref((D,))
            self.g_leak = ref((D,))
            sign = jnp.where(jr.bernoulli(next(keys), 0.5, (D,)), 1, -1).astype(dtype)
            self.e_leak = sign * uniform(next(keys), (D,), 0.5, 1.5, dtype)
            self.W_u, self.w_x = centred_normal(next(keys), D, P, dtype), ref((D,))
            self.H_u, self.h_x = centred_normal(next(keys), D, P, dtype), ref((D,))
        elif init == "reference":
            self.sigma_u, self.mu_u = ref((P,)), ref((P,))
            self.sigma_x, self.mu_x = ref((D,)), ref((D,))
            self.g_leak, self.e_leak = ref((D,)), ref((D,))
            self.W_u, self.w_x = ref((D, P)), ref((D,))
            self.H_u, self.h_x = ref((D, P)), ref((D,))
        else:

            def bio(shape, low, high):
                return uniform(next(keys), shape, low, high, dtype)

            self.sigma_u, self.mu_u = bio((P,), 3, 8), bio((P,), 0.3, 0.8)
            self.sigma_x, self.mu_x = bio((D,), 3, 8), bio((D,), 0.3, 0.8)
            self.g_leak, self.e_leak = bio((D,), 0.001, 1), bio((D,), -0.2, 0.2)
            self.W_u, self.w_x = bio((D, P), 0.001, 1), bio((D,), 0.001, 1)
            self.H_u, self.h_x = bio((D, P), 0.001, 1), bio((D,), 0.001, 1)
        if elastance == "none":
            self.kappa = self.beta = None
        else:
            self.kappa, self.beta = ref((D,)), ref((D,))
        if elastance != "symmetric":
            self.half_width = None
        elif init == "responsive":  # an elastance near 1/2 at rest, as "asymmetric"
            self.half_width = uniform(next(keys), (D,), 1, 2, dtype)
        else:
            self.half_width = ref((D,))
        self.K_u = ref((D, P)) if input_elastance else None
        self.state_size = D
        self.input_size = P
        self.elastance = elastance
        self.state_dependence = state_dependence
        if rho is not None and not 0 < rho < 1:
            raise ValueError(f"`rho` must lie in (0, 1), got {rho!r}.")
        self.rho = rho

    @property
    def input_elastance(self) -> bool:
        return self.K_u is not None

    def drive(self, u: Float[Array, " P"]) -> tuple:
        """Input-only terms: $g_\\text{leak} + W_u s_u$, $g_\\text{leak} + H_u s_u$ and the
        elastance offset $\\beta (+ K_u u)$."""
        s_u = jax.nn.sigmoid(self.sigma_u * (u - self.mu_u))
        f_u = self.g_leak + self.W_u @ s_u
        z_u = self.g_leak + self.H_u @ s_u
        if self.beta is None:
            e_u = None
        elif self.K_u is None:
            e_u = self.beta
        else:
            e_u = self.beta + self.K_u @ u
        return f_u, z_u, e_u

    def affine_form(self, x, drive):
        f_u, z_u, e_u = drive
        s_x = jax.nn.sigmoid(self.sigma_x * (x - self.mu_x))
        f = f_u if self.state_dependence != "full" else f_u + self.w_x * s_x
        z = z_u if self.state_dependence == "none" else z_u + self.h_x * s_x
        A = -jax.nn.sigmoid(f)
        b = self.e_leak * jnp.tanh(z)
        if self.elastance != "none":
            eps = elastance(self.elastance, self.kappa * x + e_u, self.half_width)
            A, b = A * eps, b * eps
        if self.rho is not None:
            A = -(1 - self.rho) + self.rho * A
        return A, b


def STC(
    state_size: int,
    input_size: int,
    *,
    init: str = "reference",
    dtype=None,
    key: PRNGKeyArray,
) -> LRC:
    r"""The STC neuron: an [`LRC`][lrc_toolkit.LRC] without liquid capacitance.

    $\frac{dx}{dt} = -\sigma(f) \odot x + e_\text{leak} \odot \tanh(z)$, i.e.
    `LRC(..., elastance="none")`.

    **Arguments:** as for [`LRC`][lrc_toolkit.LRC].

    **Returns:**

    An `LRC` with `elastance="none"`.
    """
    return LRC(
        state_size, input_size, elastance="none", init=init, dtype=dtype, key=key
    )
