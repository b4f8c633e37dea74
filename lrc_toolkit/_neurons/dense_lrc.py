import math
from typing import ClassVar, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

from .._checks import check_choice
from ._init import (
    centred_normal,
    check_sizes,
    default_float,
    elastance,
    inv_softplus,
    uniform,
)
from ._synaptic import AbstractSynapticNeuron


class DenseLRC(AbstractSynapticNeuron):
    r"""The original all-to-all liquid-resistance liquid-capacitance neuron.

    Every pair of neurons $j \to i$ and every input $k \to i$ has a synapse:

    $$
    \begin{aligned}
    s_{ji} &= \sigma(\sigma_{ji}(x_j - \mu_{ji})), \qquad
    s^u_{ki} = \sigma(\sigma^u_{ki}(u_k - \mu^u_{ki})),\\
    f_i &= g_{\text{leak},i} + \textstyle\sum_j w_{ji} s_{ji} + \sum_k w^u_{ki} s^u_{ki},
    \qquad z_i = g_{\text{leak},i} + \sum_j h_{ji} s_{ji} + \sum_k h^u_{ki} s^u_{ki},\\
    \epsilon &= \sigma(W_\epsilon [u; x] + b_\epsilon), \qquad
    \frac{dx_i}{dt} = \epsilon_i \big(-\sigma(f_i)\, x_i + e_{\text{leak},i} \tanh(z_i)\big),
    \end{aligned}
    $$

    with non-negative forget weights $w, w^u$ (stored through a softplus) and signed
    update weights $h, h^u$. The Jacobian is dense: solve it in parallel with
    `method="dense"` (exact Newton, $O(TD^3)$) or `method="quasi"` (its diagonal).

    ??? cite "Reference"

        ```bibtex
        @article{farsang2024liquid,
          title={Liquid Resistance Liquid Capacitance Networks},
          author={Farsang, M\'onika and Neubauer, Sophie A. and Grosu, Radu},
          journal={arXiv:2403.08791},
          year={2024}
        }
        ```
    """

    state_size: int = eqx.field(static=True)
    input_size: int = eqx.field(static=True)
    jacobian_structure: ClassVar[Literal["dense"]] = "dense"

    sigma: Float[Array, "D D"]
    mu: Float[Array, "D D"]
    w_raw: Float[Array, "D D"]
    h: Float[Array, "D D"]
    sigma_u: Float[Array, "P D"]
    mu_u: Float[Array, "P D"]
    w_u_raw: Float[Array, "P D"]
    h_u: Float[Array, "P D"]
    g_leak: Float[Array, " D"]
    e_leak: Float[Array, " D"]
    W_eps: Float[Array, "D P+D"]
    b_eps: Float[Array, " D"]

    def __init__(
        self,
        state_size: int,
        input_size: int,
        *,
        init: str = "biophysical",
        dtype=None,
        key: PRNGKeyArray,
    ):
        r"""**Arguments:**

        - `state_size`: the number of neurons $D$.
        - `input_size`: the number of input channels $P$.
        - `init`: `"biophysical"` (default: $\sigma \in [3, 8]$, $\mu \in [0.3, 0.8]$,
            weights in $[0.001, 1]$, $g_\text{leak} \in [0.001, 1]$,
            $e_\text{leak} \in [-0.2, 0.2]$), `"reference"` (every parameter in
            $\pm 1/\sqrt{D}$, forget weights in $(0, 1/\sqrt{D}]$) or
            `"responsive"` (as [`LRC`][lrc_toolkit.LRC]'s: input synapses centred
            on standardised inputs, update weights $h^u$ with row means removed
            and of size $2/\sqrt{P}$, reversal potentials $\pm[0.5, 1.5]$, so
            that the state follows its input from the first step; the model's
            named `"dense-lrc"` uses it).
        - `dtype`: the floating dtype of the parameters.
        - `key`: a `jax.random.key`.
        """
        check_choice("init", init, ("biophysical", "reference", "responsive"))
        check_sizes(state_size, input_size)
        dtype = default_float(dtype)
        D, P = state_size, input_size
        keys = iter(jr.split(key, 20))
        r = 1 / math.sqrt(D)

        def u(shape, low, high):
            return uniform(next(keys), shape, low, high, dtype)

        if init == "biophysical":
            self.sigma, self.mu = u((D, D), 3, 8), u((D, D), 0.3, 0.8)
            self.sigma_u, self.mu_u = u((P, D), 3, 8), u((P, D), 0.3, 0.8)
            self.w_raw = inv_softplus(u((D, D), 0.001, 1))
            self.w_u_raw = inv_softplus(u((P, D), 0.001, 1))
            self.h = u((D, D), -1, 1) / D
            self.h_u = u((P, D), -1, 1) / P
            self.g_leak, self.e_leak = u((D,), 0.001, 1), u((D,), -0.2, 0.2)
        else:  # "reference", and the start of "responsive"
            self.sigma, self.mu = u((D, D), -r, r), u((D, D), -r, r)
            self.sigma_u, self.mu_u = u((P, D), -r, r), u((P, D), -r, r)
            self.w_raw = inv_softplus(u((D, D), 1e-3 * r, r))
            self.w_u_raw = inv_softplus(u((P, D), 1e-3 * r, r))
            self.h, self.h_u = u((D, D), -r, r), u((P, D), -r, r)
            self.g_leak, self.e_leak = u((D,), -r, r), u((D,), -r, r)
        if init == "responsive":  # as LRC(init="responsive"): the input synapses
            # centred on standardised inputs, the reversal potentials +-[0.5, 1.5]
            self.sigma_u, self.mu_u = u((P, D), 1, 3), u((P, D), -0.5, 0.5)
            self.h_u = centred_normal(next(keys), D, P, dtype).T
            sign = jnp.where(jr.bernoulli(next(keys), 0.5, (D,)), 1, -1).astype(dtype)
            self.e_leak = sign * u((D,), 0.5, 1.5)
        self.W_eps = u((D, P + D), -r, r)
        self.b_eps = u((D,), -r, r)
        self.state_size = D
        self.input_size = P

    def drive(self, u: Float[Array, " P"]):
        s_u = jax.nn.sigmoid(self.sigma_u * (u[:, None] - self.mu_u))  # (P, D)
        f_u = self.g_leak + jnp.sum(jax.nn.softplus(self.w_u_raw) * s_u, axis=0)
        z_u = self.g_leak + jnp.sum(self.h_u * s_u, axis=0)
        e_u = self.b_eps + self.W_eps[:, : self.input_size] @ u
        return f_u, z_u, e_u

    def _synapse_parameters(self):
        W_x = self.W_eps[:, self.input_size :]  # (D_i, D_j)
        return self.w_raw, self.sigma, self.mu, self.h, W_x.T

    @staticmethod
    def _synapses(X, params):
        r"""Each synapse $j \to i$'s terms of $f$, $z$ and the elastance's
        pre-activation, at the presynaptic states `X[j, i]` $= x_j$."""
        w_raw, sigma, mu, h, W_x = params
        s = jax.nn.sigmoid(sigma * (X - mu))
        return jax.nn.softplus(w_raw) * s, h * s, W_x * X

    def _combine(self, sums, drive):
        (f_x, z_x, e_x), (f_u, z_u, e_u) = sums, drive
        eps = elastance("asymmetric", e_u + e_x, None)
        return -jax.nn.sigmoid(f_u + f_x) * eps, self.e_leak * jnp.tanh(z_u + z_x) * eps
