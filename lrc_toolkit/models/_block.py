"""One LrcSSM block (LayerNorm -> liquid layer -> MLP -> residual -> LayerNorm), and
the run-time error that names it when its liquid layer's solve fails."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._discretise import AbstractDiscretisation
from .._neurons.base import AbstractLiquidNeuron
from .._neurons.registry import NeuronFactory
from .._solution import Solution
from .._solve.base import AbstractLiquidSolver
from .._solve.solve import solve
from ._mlp import mlp


class LiquidBlock(eqx.Module):
    r"""One LrcSSM block: LayerNorm → liquid layer → MLP ($D \to H$) → residual add
    → LayerNorm, applied to a whole sequence of shape `(T, H)`.

    The liquid layer integrates the neuron from $x_0 = 0$ with the block's
    normalised $H$-dimensional signal as its input $u_t$, by the block's `solver`.
    """

    norm_in: eqx.nn.LayerNorm
    neuron: AbstractLiquidNeuron
    mlp: eqx.nn.MLP
    norm_out: eqx.nn.LayerNorm
    residual: str = eqx.field(static=True)

    def __init__(
        self,
        hidden_size: int,
        state_size: int,
        neuron_factory: NeuronFactory,
        *,
        activation: str = "gelu",
        norm_affine: bool = True,
        residual: str = "normalised",
        init: str = "he_uniform",
        dtype,
        key: PRNGKeyArray,
    ):
        """**Arguments:**

        - `hidden_size`: $H$.
        - `state_size`: $D$.
        - `neuron_factory`: called as `neuron_factory(D, H, key=key)`.
        - `activation`, `norm_affine`, `residual`, `init`: as for
            [`LrcSSM`][lrc_toolkit.models.LrcSSM].
        - `dtype`: the floating dtype of the norms and the MLP.
        - `key`: a `jax.random.key`.
        """
        nkey, mkey = jr.split(key)
        neuron = neuron_factory(state_size, hidden_size, key=nkey)
        if not isinstance(neuron, AbstractLiquidNeuron):
            raise TypeError(
                "The neuron factory must return an `lrc_toolkit.AbstractLiquidNeuron`, "
                f"got {type(neuron).__name__}."
            )
        if (neuron.state_size, neuron.input_size) != (state_size, hidden_size):
            raise ValueError(
                f"The neuron factory was called as factory({state_size}, {hidden_size}, "
                "key=...) and must return a neuron with state_size="
                f"{state_size} and input_size={hidden_size}; got state_size="
                f"{neuron.state_size}, input_size={neuron.input_size}."
            )
        norm = lambda: eqx.nn.LayerNorm(
            hidden_size, use_weight=norm_affine, use_bias=norm_affine, dtype=dtype
        )
        self.norm_in = norm()
        self.neuron = neuron
        self.residual = residual
        # A complex state (e.g. `ComplexLRC`) is read out as [Re x; Im x]: the MLP's
        # first linear layer on it is Re(C x) for a learned complex C.
        complex_state = jnp.issubdtype(
            getattr(neuron, "state_dtype", dtype), jnp.complexfloating
        )
        self.mlp = mlp(
            2 * state_size if complex_state else state_size,
            hidden_size,
            hidden_size,
            activation,
            init,
            dtype=dtype,
            key=mkey,
        )
        self.norm_out = norm()

    def __call__(
        self,
        h: Float[Array, "T H"],
        solver: AbstractLiquidSolver,
        discretisation: AbstractDiscretisation,
        dt: Float[Array, " T"],
        index: int = 0,
        throw: bool = True,
    ) -> tuple[Float[Array, "T H"], Solution]:
        """Run the block on a sequence.

        **Arguments:**

        - `h`: the block's input, shape `(T, H)`.
        - `solver`, `discretisation`: how the liquid layer is solved.
        - `dt`: the step sizes, shape `(T,)`.
        - `index`: the block's position, named in error messages.
        - `throw`: raise (at run time) if the liquid layer's solve failed; with
            `False` the failure is only in the returned solution's `result`.

        **Returns:**

        The block's output `(T, H)` and the liquid layer's
        [`Solution`][lrc_toolkit.Solution].
        """
        u = jax.vmap(self.norm_in)(h)
        x0 = self.initial_state(u.dtype)
        skip = u if self.residual == "normalised" else h
        sol = solve(
            self.neuron,
            x0,
            u,
            solver=solver,
            dt=dt,
            discretisation=discretisation,
            throw=False,
        )
        states = _raise_if_failed(sol, index, self.neuron) if throw else sol.states
        return self._read_out(skip, states), sol

    def initial_state(self, dtype) -> Array:
        """$x_0 = 0$ in the neuron's state dtype."""
        neuron = self.neuron
        return jnp.zeros((neuron.state_size,), getattr(neuron, "state_dtype", dtype))

    def step(
        self,
        x: Array,
        h: Float[Array, " H"],
        discretisation: AbstractDiscretisation,
        dt: Float[ArrayLike, ""],
    ) -> tuple[Array, Float[Array, " H"]]:
        """One time step: the new neuron state and the block's output."""
        u = self.norm_in(h)
        x = discretisation.step(
            self.neuron, x, self.neuron.drive(u), jnp.asarray(dt, jnp.real(x).dtype)
        )
        skip = u if self.residual == "normalised" else h
        return x, self._read_out(skip[None], x[None])[0]

    def _read_out(self, skip, states):
        if jnp.iscomplexobj(states):
            states = jnp.concatenate([jnp.real(states), jnp.imag(states)], axis=-1)
        return jax.vmap(self.norm_out)(skip + jax.vmap(self.mlp)(states))


def _raise_if_failed(sol: Solution, index: int, neuron) -> Array:
    """The states, with a run-time error naming the block and the cause if the
    liquid layer's solve failed (rather than a confusing error further on)."""
    prefix = (
        f"LrcSSM block {index} ({_name(neuron)}): the liquid layer's solve "
        "failed, so the model's output would be garbage. Cause: "
    )
    return sol.raise_if_failed(prefix).states


def _name(neuron) -> str:
    """`LTC`, or `TimeScaled(LTC)` for a neuron with learned time scales."""
    inner = getattr(neuron, "neuron", None)
    if isinstance(inner, AbstractLiquidNeuron):
        return f"{type(neuron).__name__}({_name(inner)})"
    return type(neuron).__name__
