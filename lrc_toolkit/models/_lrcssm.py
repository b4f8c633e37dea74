from collections.abc import Callable
from typing import Any, Literal

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, ArrayLike, Bool, Float, PRNGKeyArray

from .._discretise import AbstractDiscretisation, Euler
from .._neurons._init import default_float
from .._neurons.base import AbstractLiquidNeuron
from .._neurons.complex_lrc import ComplexLRC
from .._neurons.dense_lrc import DenseLRC
from .._neurons.gated import GRUNeuron, LSTMNeuron, MGUNeuron
from .._neurons.lrc import LRC, STC
from .._neurons.ltc import LTC
from .._solve.ode import solve_ode
from .._solve.parallel import solve_parallel
from .._solve.sequential import solve_sequential


NeuronFactory = Callable[..., AbstractLiquidNeuron]

# Neurons known by name: a model built from one of these can be rebuilt from its
# `config` alone (the CLI and checkpoints rely on it). Each entry is called as
# `factory(state_size, input_size, *, dtype, key)`.
NEURONS: dict[str, NeuronFactory] = {
    "lrc": LRC,
    "lrc-symmetric": lambda D, P, **kw: LRC(D, P, elastance="symmetric", **kw),
    "lrc-input-elastance": lambda D, P, **kw: LRC(D, P, input_elastance=True, **kw),
    "stc": STC,
    "dense-lrc": DenseLRC,
    "ltc": LTC,
    # The paper's ablations (Tables 8-11): diagonal gated cells, LRC without state
    # dependence in A (and b), complex self-synapses.
    "gru": GRUNeuron,
    "mgu": MGUNeuron,
    "lstm": LSTMNeuron,
    "lrc-au-bxu": lambda D, P, **kw: LRC(
        D, P, elastance="none", state_dependence="update", **kw
    ),
    "lrc-au-bu": lambda D, P, **kw: LRC(
        D, P, elastance="none", state_dependence="none", **kw
    ),
    "complex-lrc-gk": lambda D, P, **kw: ComplexLRC(
        D, P, complex_parameters=("w_x", "h_x"), **kw
    ),
    "complex-lrc-gka": lambda D, P, **kw: ComplexLRC(
        D, P, complex_parameters=("w_x", "h_x", "sigma_x"), **kw
    ),
    "complex-lrc": ComplexLRC,
}

_SOLVERS = ("parallel", "sequential", "ode")
_TASKS = ("classification", "regression")


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")


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

    def __init__(
        self,
        hidden_size: int,
        state_size: int,
        neuron_factory: NeuronFactory,
        *,
        dtype,
        key: PRNGKeyArray,
    ):
        """**Arguments:**

        - `hidden_size`: $H$.
        - `state_size`: $D$.
        - `neuron_factory`: called as `neuron_factory(D, H, key=key)`.
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
        self.norm_in = eqx.nn.LayerNorm(hidden_size, dtype=dtype)
        self.neuron = neuron
        # A complex state (e.g. `ComplexLRC`) is read out as [Re x; Im x]: the MLP's
        # first linear layer on it is Re(C x) for a learned complex C.
        complex_state = jnp.issubdtype(
            getattr(neuron, "state_dtype", dtype), jnp.complexfloating
        )
        self.mlp = eqx.nn.MLP(
            2 * state_size if complex_state else state_size,
            hidden_size,
            hidden_size,
            1,
            activation=jax.nn.gelu,
            dtype=dtype,
            key=mkey,
        )
        self.norm_out = eqx.nn.LayerNorm(hidden_size, dtype=dtype)

    def __call__(self, h: Float[Array, "T H"], liquid: Callable) -> Float[Array, "T H"]:
        u = jax.vmap(self.norm_in)(h)
        states = liquid(self.neuron, u)
        if jnp.iscomplexobj(states):
            states = jnp.concatenate([jnp.real(states), jnp.imag(states)], axis=-1)
        return jax.vmap(self.norm_out)(h + jax.vmap(self.mlp)(states))


class LrcSSM(eqx.Module):
    r"""The LrcSSM sequence model (Farsang et al., 2025, Figure 1).

    Per time step, an input encoder (MLP) maps $u_t \in \mathbb{R}^P$ to the hidden
    width $H$; then `num_blocks` [`LiquidBlock`][lrc_toolkit.models.LiquidBlock]s
    of [LayerNorm → liquid layer (state $D$) → MLP $D \to H$ → residual add →
    LayerNorm]; then a per-step decoder MLP. For classification the per-step
    outputs are averaged over the valid (unmasked) steps; for regression the
    per-step outputs are returned.

    The model works on **one** sequence; batch with `jax.vmap(model)(xs, masks)`.

    Padded steps (where `mask` is `False`) must come after the real ones. They are
    replaced by zeros before the encoder, so their content (even NaN) never matters;
    since the recurrence is causal, they never influence the outputs at valid steps,
    and they are left out of the time average.

    **Example:**

    ```python
    model = LrcSSM(input_size=6, num_outputs=4, key=jax.random.key(0))
    logits = jax.vmap(model)(x, mask)          # x (B, T, 6), mask (B, T)
    ```

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

    encoder: eqx.nn.MLP
    blocks: tuple[LiquidBlock, ...]
    decoder: eqx.nn.MLP
    discretisation: AbstractDiscretisation
    ode_solver: diffrax.AbstractSolver
    input_size: int = eqx.field(static=True)
    num_outputs: int = eqx.field(static=True)
    hidden_size: int = eqx.field(static=True)
    state_size: int = eqx.field(static=True)
    num_blocks: int = eqx.field(static=True)
    solver: str = eqx.field(static=True)
    task: str = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    method: str | None = eqx.field(static=True)
    rtol: float | None = eqx.field(static=True)
    atol: float | None = eqx.field(static=True)
    max_iters: int | None = eqx.field(static=True)
    neuron_name: str | None = eqx.field(static=True)
    dtype_name: str = eqx.field(static=True)

    def __init__(
        self,
        input_size: int,
        num_outputs: int,
        *,
        hidden_size: int = 64,
        state_size: int = 64,
        num_blocks: int = 2,
        neuron: str | NeuronFactory = "lrc",
        solver: Literal["parallel", "sequential", "ode"] = "parallel",
        task: Literal["classification", "regression"] = "classification",
        dt: float = 1.0,
        discretisation: AbstractDiscretisation = Euler(),
        method: Literal["newton", "quasi", "dense"] | None = None,
        rtol: float | None = None,
        atol: float | None = None,
        max_iters: int | None = None,
        ode_solver: diffrax.AbstractSolver = diffrax.Euler(),
        dtype=None,
        key: PRNGKeyArray,
    ):
        r"""**Arguments:**

        - `input_size`: the number of input channels $P$.
        - `num_outputs`: the number of classes (classification) or of output
            channels per step (regression).
        - `hidden_size`: the width $H$ of the residual stream.
        - `state_size`: the number of liquid neurons $D$ per block.
        - `num_blocks`: the number of blocks $L$.
        - `neuron`: the liquid neuron of every block: a name from
            `lrc_toolkit.models.NEURONS` (`"lrc"` (default), `"lrc-symmetric"`,
            `"lrc-input-elastance"`, `"stc"`, `"dense-lrc"`, `"ltc"`), or a factory
            called as `neuron(D, H, key=key)` that returns any
            [`AbstractLiquidNeuron`][lrc_toolkit.AbstractLiquidNeuron] with
            `state_size=D`, `input_size=H` (e.g.
            `functools.partial(lrc_toolkit.LRC, elastance="none", dtype=jnp.float32)`,
            or your own neuron). Named neurons get the model's `dtype`; a factory
            must create its parameters in it.
        - `solver`: how the liquid layers are evaluated: `"parallel"`
            ([`solve_parallel`][lrc_toolkit.solve_parallel], Newton + parallel scan,
            the paper's choice), `"sequential"`
            ([`solve_sequential`][lrc_toolkit.solve_sequential], `lax.scan`) or
            `"ode"` ([`solve_ode`][lrc_toolkit.solve_ode] with `ode_solver` and
            one step per sample). With the defaults all three compute the same
            explicit-Euler recurrence with $\Delta t = 1$.
        - `task`: `"classification"` (outputs averaged over the valid steps: logits
            of shape `(num_outputs,)`) or `"regression"` (per-step outputs of shape
            `(T, num_outputs)`).
        - `dt`: the step size $\Delta t$ of the liquid layers.
        - `discretisation`: the map $\Phi$ of the `"parallel"` and `"sequential"`
            solvers (default [`Euler()`][lrc_toolkit.Euler]).
        - `method`, `rtol`, `atol`, `max_iters`: passed to
            [`solve_parallel`][lrc_toolkit.solve_parallel] (e.g. `method="dense"` or
            `"quasi"` for `"dense-lrc"`).
        - `ode_solver`: the Diffrax solver of `solver="ode"` (default
            `diffrax.Euler()`, which reproduces the explicit-Euler recurrence).
        - `dtype`: the floating dtype of the parameters (default: JAX's default
            float). Inputs are cast to it.
        - `key`: a `jax.random.key`.
        """
        for name, value in (
            ("input_size", input_size),
            ("num_outputs", num_outputs),
            ("hidden_size", hidden_size),
            ("state_size", state_size),
            ("num_blocks", num_blocks),
        ):
            _positive_int(name, value)
        if solver not in _SOLVERS:
            raise ValueError(f"`solver` must be one of {_SOLVERS}, got {solver!r}.")
        if task not in _TASKS:
            raise ValueError(f"`task` must be one of {_TASKS}, got {task!r}.")
        if not isinstance(dt, int | float) or isinstance(dt, bool) or not dt > 0:
            raise ValueError(f"`dt` must be a positive number, got {dt!r}.")
        if not isinstance(discretisation, AbstractDiscretisation):
            raise TypeError(
                "`discretisation` must be an `lrc_toolkit.AbstractDiscretisation` such "
                f"as `Euler()`, got {type(discretisation).__name__}."
            )
        if not isinstance(ode_solver, diffrax.AbstractSolver):
            raise TypeError(
                "`ode_solver` must be a Diffrax solver such as `diffrax.Euler()`, got "
                f"{type(ode_solver).__name__}."
            )
        dtype = default_float(dtype)
        if isinstance(neuron, str):
            if neuron not in NEURONS:
                raise ValueError(
                    f"Unknown neuron {neuron!r}; use one of {sorted(NEURONS)} or pass "
                    "a factory `neuron(state_size, input_size, key=key)`."
                )
            named = NEURONS[neuron]
            factory = lambda D, P, *, key: named(D, P, dtype=dtype, key=key)
            neuron_name = neuron
        elif callable(neuron):
            factory, neuron_name = neuron, None
        else:
            raise TypeError(
                "`neuron` must be a name from `lrc_toolkit.models.NEURONS` or a "
                f"callable factory, got {type(neuron).__name__}."
            )
        ekey, dkey, *bkeys = jr.split(key, num_blocks + 2)
        self.encoder = eqx.nn.MLP(
            input_size,
            hidden_size,
            hidden_size,
            1,
            activation=jax.nn.gelu,
            dtype=dtype,
            key=ekey,
        )
        self.blocks = tuple(
            LiquidBlock(hidden_size, state_size, factory, dtype=dtype, key=k)
            for k in bkeys
        )
        self.decoder = eqx.nn.MLP(
            hidden_size,
            num_outputs,
            hidden_size,
            1,
            activation=jax.nn.gelu,
            dtype=dtype,
            key=dkey,
        )
        self.discretisation = discretisation
        self.ode_solver = ode_solver
        self.input_size = input_size
        self.num_outputs = num_outputs
        self.hidden_size = hidden_size
        self.state_size = state_size
        self.num_blocks = num_blocks
        self.solver = solver
        self.task = task
        self.dt = float(dt)
        self.method = method
        self.rtol = rtol
        self.atol = atol
        self.max_iters = max_iters
        self.neuron_name = neuron_name
        self.dtype_name = jnp.dtype(dtype).name

    @property
    def dtype(self) -> jnp.dtype:
        """The floating dtype of the parameters."""
        return jnp.dtype(self.dtype_name)

    @property
    def config(self) -> dict[str, Any] | None:
        """The constructor arguments as a JSON-serialisable dict, from which
        [`LrcSSM.from_config`][lrc_toolkit.models.LrcSSM.from_config] rebuilds the
        model's structure; `None` if the neuron was given as a factory or a
        non-default discretisation or ODE solver was used (then pass a template
        model to [`load_checkpoint`][lrc_toolkit.training.load_checkpoint])."""
        if (
            self.neuron_name is None
            or type(self.discretisation) is not Euler
            or type(self.ode_solver) is not diffrax.Euler
        ):
            return None
        return {
            "input_size": self.input_size,
            "num_outputs": self.num_outputs,
            "hidden_size": self.hidden_size,
            "state_size": self.state_size,
            "num_blocks": self.num_blocks,
            "neuron": self.neuron_name,
            "solver": self.solver,
            "task": self.task,
            "dt": self.dt,
            "method": self.method,
            "rtol": self.rtol,
            "atol": self.atol,
            "max_iters": self.max_iters,
            "dtype": self.dtype_name,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], *, key: PRNGKeyArray) -> "LrcSSM":
        """Build a model from [`LrcSSM.config`][lrc_toolkit.models.LrcSSM.config].

        **Arguments:**

        - `config`: the dict.
        - `key`: a `jax.random.key` for the (fresh) parameters.

        **Returns:**

        An `LrcSSM`.
        """
        config = dict(config)
        known = {
            "input_size",
            "num_outputs",
            "hidden_size",
            "state_size",
            "num_blocks",
            "neuron",
            "solver",
            "task",
            "dt",
            "method",
            "rtol",
            "atol",
            "max_iters",
            "dtype",
        }
        unknown = set(config) - known
        if unknown:
            raise ValueError(f"Unknown LrcSSM config keys {sorted(unknown)}.")
        input_size = config.pop("input_size")
        num_outputs = config.pop("num_outputs")
        return cls(input_size, num_outputs, **config, key=key)

    def _liquid(self, neuron: AbstractLiquidNeuron, u: Float[Array, "T H"]):
        x0 = jnp.zeros((neuron.state_size,), getattr(neuron, "state_dtype", u.dtype))
        if self.solver == "parallel":
            sol = solve_parallel(
                neuron,
                x0,
                u,
                dt=self.dt,
                discretisation=self.discretisation,
                method=self.method,
                rtol=self.rtol,
                atol=self.atol,
                max_iters=self.max_iters,
            )
        elif self.solver == "sequential":
            sol = solve_sequential(
                neuron, x0, u, dt=self.dt, discretisation=self.discretisation
            )
        else:
            ts = self.dt * jnp.arange(1, u.shape[0] + 1, dtype=u.dtype)
            sol = solve_ode(neuron, ts, u, x0, solver=self.ode_solver, t0=0.0)
        return sol.states

    def _check(self, x, mask):
        x = jnp.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.input_size:
            raise ValueError(
                f"`x` must have shape (T, {self.input_size}) = (time steps, input "
                f"channels) for one sequence; got shape {x.shape}. For a batch use "
                "`jax.vmap(model)(xs, masks)`."
            )
        if x.shape[0] == 0:
            raise ValueError("`x` has no time steps.")
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise TypeError(f"`x` must be a floating array, got dtype {x.dtype}.")
        x = x.astype(self.dtype)
        if mask is not None:
            mask = jnp.asarray(mask)
            if mask.shape != x.shape[:1] or mask.dtype != jnp.bool_:
                raise ValueError(
                    f"`mask` must be a boolean array of shape ({x.shape[0]},) (True on "
                    f"real steps, False on padding), got {mask.dtype} of shape "
                    f"{mask.shape}."
                )
            # Padding (possibly garbage or NaN) is replaced by zeros, so that it can
            # never reach the computation; being after the real steps, it cannot
            # influence them through the causal recurrence.
            x = jnp.where(mask[:, None], x, 0)
        return x, mask

    def per_step(
        self, x: Float[ArrayLike, "T P"], mask: Bool[ArrayLike, " T"] | None = None
    ) -> Float[Array, "T O"]:
        """The decoder's output at every time step (before any time average).

        **Arguments:** as for `__call__`.

        **Returns:**

        An array of shape `(T, num_outputs)`; rows at padded steps are meaningless.
        """
        x, mask = self._check(x, mask)
        h = jax.vmap(self.encoder)(x)
        for block in self.blocks:
            h = block(h, self._liquid)
        return jax.vmap(self.decoder)(h)

    def __call__(
        self, x: Float[ArrayLike, "T P"], mask: Bool[ArrayLike, " T"] | None = None
    ) -> Float[Array, "..."]:
        """Run the model on one sequence.

        **Arguments:**

        - `x`: the inputs, shape `(T, input_size)`.
        - `mask`: optional, shape `(T,)`, `True` on real steps and `False` on padding
            (which must come after the real steps). Default: every step is real.

        **Returns:**

        Classification: logits of shape `(num_outputs,)`, the mean of the per-step
        outputs over the valid steps. Regression: per-step outputs of shape
        `(T, num_outputs)` (padded rows are meaningless; mask them in the loss).
        """
        out = self.per_step(x, mask)
        if self.task == "regression":
            return out
        if mask is None:
            return jnp.mean(out, axis=0)
        mask = jnp.asarray(mask)
        total = jnp.sum(jnp.where(mask[:, None], out, 0), axis=0)
        count = jnp.maximum(jnp.sum(mask), 1).astype(out.dtype)
        return total / count
