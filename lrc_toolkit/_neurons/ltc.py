from typing import ClassVar, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

from ._init import (
    check_sizes,
    default_float,
    inv_softplus,
    uniform,
)
from ._synaptic import AbstractSynapticNeuron


class LTC(AbstractSynapticNeuron):
    r"""The liquid time-constant neuron (Hasani et al., 2021).

    $$
    c_m \frac{dv_i}{dt} = g_{\text{leak},i}(v_{\text{leak},i} - v_i)
      + \sum_j w_{ji}\, \sigma(\sigma_{ji}(v_j - \mu_{ji}))\,(E_{ji} - v_i)
      + \sum_k w^s_{ki}\, \sigma(\sigma^s_{ki}(u_k - \mu^s_{ki}))\,(E^s_{ki} - v_i),
    $$

    with $c_m, g_\text{leak}, w, w^s > 0$ (stored through a softplus, as in `ncps`)
    and reversal potentials $E, E^s \in \{-1, 1\}$ at initialisation. This is
    $\frac{dv}{dt} = A(v, u)\, v + b(v, u)$ with $A \le 0$, so the semi-implicit
    [`SemiImplicitEuler`][lrc_toolkit.SemiImplicitEuler] step of `ncps` is stable
    where explicit Euler at $\Delta t = 1$ is not. The Jacobian is dense.

    ??? cite "Reference"

        ```bibtex
        @inproceedings{hasani2021liquid,
          title={Liquid Time-constant Networks},
          author={Hasani, Ramin and Lechner, Mathias and Amini, Alexander and
                  Rus, Daniela and Grosu, Radu},
          booktitle={AAAI},
          year={2021}
        }
        ```
    """

    state_size: int = eqx.field(static=True)
    input_size: int = eqx.field(static=True)
    jacobian_structure: ClassVar[Literal["dense"]] = "dense"

    cm_raw: Float[Array, " D"]
    g_leak_raw: Float[Array, " D"]
    v_leak: Float[Array, " D"]
    sigma: Float[Array, "D D"]
    mu: Float[Array, "D D"]
    w_raw: Float[Array, "D D"]
    erev: Float[Array, "D D"]
    sensory_sigma: Float[Array, "P D"]
    sensory_mu: Float[Array, "P D"]
    sensory_w_raw: Float[Array, "P D"]
    sensory_erev: Float[Array, "P D"]

    def __init__(
        self, state_size: int, input_size: int, *, dtype=None, key: PRNGKeyArray
    ):
        r"""Initialised with the ranges of `ncps`: $c_m \in [0.4, 0.6]$,
        $g_\text{leak} \in [0.001, 1]$, $v_\text{leak} \in [-0.2, 0.2]$, weights in
        $[0.001, 1]$, $\sigma \in [3, 8]$, $\mu \in [0.3, 0.8]$, $E = \pm 1$.

        **Arguments:**

        - `state_size`: the number of neurons $D$.
        - `input_size`: the number of input channels $P$.
        - `dtype`: the floating dtype of the parameters.
        - `key`: a `jax.random.key`.
        """
        check_sizes(state_size, input_size)
        dtype = default_float(dtype)
        D, P = state_size, input_size
        keys = iter(jr.split(key, 12))

        def u(shape, low, high):
            return uniform(next(keys), shape, low, high, dtype)

        def sign(shape):
            return jnp.where(jr.bernoulli(next(keys), 0.5, shape), 1.0, -1.0).astype(
                dtype
            )

        self.cm_raw = inv_softplus(u((D,), 0.4, 0.6))
        self.g_leak_raw = inv_softplus(u((D,), 0.001, 1))
        self.v_leak = u((D,), -0.2, 0.2)
        self.sigma, self.mu = u((D, D), 3, 8), u((D, D), 0.3, 0.8)
        self.w_raw = inv_softplus(u((D, D), 0.001, 1))
        self.erev = sign((D, D))
        self.sensory_sigma, self.sensory_mu = u((P, D), 3, 8), u((P, D), 0.3, 0.8)
        self.sensory_w_raw = inv_softplus(u((P, D), 0.001, 1))
        self.sensory_erev = sign((P, D))
        self.state_size = D
        self.input_size = P

    def drive(self, u: Float[Array, " P"]):
        act = jax.nn.softplus(self.sensory_w_raw) * jax.nn.sigmoid(
            self.sensory_sigma * (u[:, None] - self.sensory_mu)
        )
        return jnp.sum(act, axis=0), jnp.sum(act * self.sensory_erev, axis=0)

    def default_discretisation(self):
        r"""[`SemiImplicitEuler()`][lrc_toolkit.SemiImplicitEuler], the fused
        semi-implicit step of `ncps`: the conductances make explicit Euler unstable
        at $\Delta t \approx 1$, while this step is stable for every $\Delta t$."""
        from .._discretise import SemiImplicitEuler

        return SemiImplicitEuler()

    def _synapse_parameters(self):
        return self.w_raw, self.sigma, self.mu, self.erev

    @staticmethod
    def _synapses(X, params):
        r"""The conductance of each synapse $j \to i$ and its product with the
        reversal potential, at the presynaptic states `X[j, i]` $= v_j$."""
        w_raw, sigma, mu, erev = params
        act = jax.nn.softplus(w_raw) * jax.nn.sigmoid(sigma * (X - mu))
        return act, act * erev

    def _combine(self, sums, drive):
        (act, act_erev), (sens_den, sens_num) = sums, drive
        g_leak = jax.nn.softplus(self.g_leak_raw)
        cm = jax.nn.softplus(self.cm_raw)
        den = g_leak + act + sens_den
        num = g_leak * self.v_leak + act_erev + sens_num
        return -den / cm, num / cm
