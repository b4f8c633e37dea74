"""Streaming use of `LrcSSM`: one sample at a time (a base class of the model; it
reads the model's fields)."""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from .._discretise import AbstractDiscretisation, DiffraxStep
from .._solve.ode import ODE


class Streaming(eqx.Module):
    """`LrcSSM`'s methods for online inference."""

    def init_state(self) -> tuple[Array, ...]:
        """The state of a stream before its first step: every block's $x_0 = 0$.

        **Returns:**

        A tuple with one neuron state per block.
        """
        return tuple(block.initial_state(self.dtype) for block in self.blocks)

    def _step_map(self) -> AbstractDiscretisation:
        solver = self.solver
        if isinstance(solver, ODE):
            if (
                solver.interpolation != "piecewise_constant"
                or solver.stepsize_controller is not None
                or solver.dt0 is not None
            ):
                raise ValueError(
                    "`step` reproduces an `ODE` solver only with its defaults "
                    "(piecewise-constant inputs, one step per sample); this model's "
                    f"solver is {solver!r}."
                )
            return DiffraxStep(solver.solver)
        return self.discretisation

    def step(
        self,
        state: tuple[Array, ...],
        u: Float[ArrayLike, " P"],
        dt: Float[ArrayLike, ""] | None = None,
    ) -> tuple[tuple[Array, ...], Float[Array, " O"]]:
        """Advance a stream by one sample: online inference, one step at a time.

        Equal, step by step, to the whole-sequence forward pass
        ([`per_step`][lrc_toolkit.models.LrcSSM.per_step]) with the same step sizes
        (every solver evaluates the same recurrence; an `ODE` solver's one step per
        sample is taken by the same Diffrax solver). Compile it once with
        `eqx.filter_jit(model.step)`.

        **Arguments:**

        - `state`: from [`init_state`][lrc_toolkit.models.LrcSSM.init_state] or the
            previous `step`.
        - `u`: the sample, shape `(input_size,)`.
        - `dt`: the time since the previous sample (default: the model's `dt`).

        **Returns:**

        `(state, output)`: the new state and this step's decoder output, shape
        `(num_outputs,)` (for classification, per-step logits; the sequence's
        logits are their running mean).
        """
        u = jnp.asarray(u).astype(self.dtype)
        if u.shape != (self.input_size,):
            raise ValueError(
                f"`u` must have shape ({self.input_size},) (one sample), got {u.shape}."
            )
        if len(state) != len(self.blocks):
            raise ValueError(
                f"`state` must hold one state per block ({len(self.blocks)}), got "
                f"{len(state)}; start from `model.init_state()`."
            )
        dt = self.dt if dt is None else dt
        discretisation = self._step_map()
        h = self.encoder(u)
        new_state = []
        for block, x in zip(self.blocks, state):
            x, h = block.step(x, h, discretisation, dt)
            new_state.append(x)
        return tuple(new_state), self.decoder(h)
