import abc

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Inexact, PyTree

from .base import AbstractAffineNeuron


class AbstractSynapticNeuron(AbstractAffineNeuron):
    r"""A dense affine neuron built from synapses $j \to i$, each a function of its
    presynaptic state $x_j$ alone (`LTC`, `DenseLRC`): subclasses define the
    per-synapse terms (`_synapses`), their parameters (`_synapse_parameters`) and
    how the sums over $j$ give $(A, b)$ (`_combine`).

    Only synapse $i \to i$ sees $x_i$ as its presynaptic state, so the diagonals
    $\partial A_i/\partial x_i$, $\partial b_i/\partial x_i$ need the derivative of
    the $D$ self-synapses alone: $O(D)$ work beside the $O(D^2)$ of the form
    itself, and no $D \times D$ Jacobian or tangent.
    """

    @abc.abstractmethod
    def _synapse_parameters(self) -> tuple[Float[Array, "D D"], ...]:
        """The synapses' parameters, each `(D, D)` with entry `[j, i]` for
        synapse $j \\to i$."""

    @staticmethod
    @abc.abstractmethod
    def _synapses(
        X: Inexact[Array, "D D"], params: tuple[Array, ...]
    ) -> tuple[Inexact[Array, "D D"], ...]:
        """Per-synapse terms, elementwise in `X`, where `X[j, i]` $= x_j$ is the
        presynaptic state seen by neuron $i$ (also called on `(D,)` arrays: the
        self-synapses)."""

    @abc.abstractmethod
    def _combine(
        self, sums: tuple[Inexact[Array, " D"], ...], drive: PyTree[Array]
    ) -> tuple[Inexact[Array, " D"], Inexact[Array, " D"]]:
        """`(A, b)` from the sums over $j$ of the synapse terms and the drive."""

    def _sums(self, x, params):
        D = x.shape[0]
        X = jnp.broadcast_to(x[:, None], (D, D))
        return tuple(jnp.sum(a, axis=0) for a in self._synapses(X, params))

    def affine_form(self, x, drive):
        return self._combine(self._sums(x, self._synapse_parameters()), drive)

    def affine_and_diagonal(self, x, drive):
        r"""The affine form and the diagonals of its Jacobians, the latter from the
        $D$ self-synapses alone (no $D \times D$ Jacobian or tangent)."""
        params = self._synapse_parameters()
        own = tuple(jnp.diagonal(a) for a in params)
        _, d_sums = jax.jvp(
            lambda v: tuple(self._synapses(v, own)), (x,), (jnp.ones_like(x),)
        )
        sums = self._sums(x, params)
        return jax.jvp(lambda s: self._combine(s, drive), (sums,), (d_sums,))
