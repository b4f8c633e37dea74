"""The whole-sequence forward pass of `LrcSSM`: `per_step`, `solutions` and
`__call__` (a base class of the model; it reads the model's fields)."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float

from .._solution import Solution
from ._inputs import check_inputs, step_sizes


class SequenceForward(eqx.Module):
    """`LrcSSM`'s methods on a whole sequence."""

    def _steps(self, T: int, ts, mask=None) -> Float[Array, " T"]:
        """The step sizes (see `_inputs.step_sizes`)."""
        return step_sizes(T, ts, mask, self.dt, self.dtype)

    def _check(self, x, mask):
        return check_inputs(x, mask, self.input_size, self.dtype)

    def _forward(
        self, x, mask, ts, throw: bool = True
    ) -> tuple[Array, tuple[Solution, ...]]:
        x, mask = self._check(x, mask)
        dt = self._steps(x.shape[0], ts, mask)
        h = jax.vmap(self.encoder)(x)
        solutions = []
        for i, block in enumerate(self.blocks):
            h, sol = block(h, self.solver, self.discretisation, dt, i, throw)
            solutions.append(sol)
        return jax.vmap(self.decoder)(h), tuple(solutions)

    def per_step(
        self,
        x: Float[ArrayLike, "T P"],
        mask: Bool[ArrayLike, " T"] | None = None,
        *,
        ts: Float[ArrayLike, " T"] | None = None,
    ) -> Float[Array, "T O"]:
        """The decoder's output at every time step (before any time average).

        **Arguments:** as for `__call__`.

        **Returns:**

        An array of shape `(T, num_outputs)`; rows at padded steps are meaningless.
        """
        return self._forward(x, mask, ts)[0]

    def solutions(
        self,
        x: Float[ArrayLike, "T P"],
        mask: Bool[ArrayLike, " T"] | None = None,
        *,
        ts: Float[ArrayLike, " T"] | None = None,
    ) -> tuple[Solution, ...]:
        """Each block's liquid-layer [`Solution`][lrc_toolkit.Solution] on one
        sequence (Newton iterations, fallbacks, `stats["max_factor"]`, ...).

        Unlike `__call__`, this does not raise when a solve fails: it is the way
        to inspect the failure (`sol.outcome`, `sol.result`, `sol.stats`).

        **Arguments:** as for `__call__`.

        **Returns:**

        A tuple with one `Solution` per block.
        """
        return self._forward(x, mask, ts, throw=False)[1]

    def __call__(
        self,
        x: Float[ArrayLike, "T P"],
        mask: Bool[ArrayLike, " T"] | None = None,
        *,
        ts: Float[ArrayLike, " T"] | None = None,
    ) -> Float[Array, "..."]:
        r"""Run the model on one sequence.

        **Arguments:**

        - `x`: the inputs, shape `(T, input_size)`.
        - `mask`: optional, shape `(T,)`, `True` on real steps and `False` on padding
            (which must come after the real steps). Default: every step is real.
        - `ts`: optional time stamps of the steps, shape `(T,)`, strictly increasing
            (irregular sampling): every liquid layer then steps by
            $\Delta t_k = t_k - t_{k-1}$ (the first step repeats the second).
            Default: the constant `dt`.

        **Returns:**

        By `readout`: `"mean"` (the classification default): the mean of the
        per-step outputs over the valid steps, shape `(num_outputs,)` (logits for
        classification); `"last"`: the output at the last valid step, shape
        `(num_outputs,)`; `"per_step"` (the regression default): every step's
        output, shape `(T, num_outputs)` (padded rows are meaningless; mask them in
        the loss).
        """
        out = self.per_step(x, mask, ts=ts)
        if self.readout == "per_step":
            return out
        if self.readout == "last":
            if mask is None:
                return out[-1]
            last = jnp.maximum(jnp.sum(jnp.asarray(mask)) - 1, 0)
            return out[last]
        if mask is None:
            return jnp.mean(out, axis=0)
        mask = jnp.asarray(mask)
        total = jnp.sum(jnp.where(mask[:, None], out, 0), axis=0)
        count = jnp.maximum(jnp.sum(mask), 1).astype(out.dtype)
        return total / count
