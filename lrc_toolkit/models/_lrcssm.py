from collections.abc import Callable, Mapping
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, ArrayLike, Bool, Float, PRNGKeyArray

from .._discretise import AbstractDiscretisation, DiffraxStep, Euler
from .._neurons._init import default_float
from .._neurons.base import AbstractLiquidNeuron
from .._neurons.cfc import AbstractCfC, CfC, ClosedForm, DiagonalCfC
from .._neurons.complex_lrc import ComplexLRC
from .._neurons.dense_lrc import DenseLRC
from .._neurons.gated import GRUNeuron, LSTMNeuron, MGUNeuron
from .._neurons.lrc import LRC, STC
from .._neurons.ltc import LTC
from .._solution import RESULTS, Solution
from .._solve.base import AbstractLiquidSolver
from .._solve.newton import ParallelNewton
from .._solve.ode import ODE
from .._solve.solve import solve, steps_from_times
from ._solver_config import (
    discretisation_from_config,
    discretisation_to_config,
    solver_from_config,
    solver_to_config,
)


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
    # Closed-form continuous-time cells (Hasani et al., 2022): the model steps them
    # with `ClosedForm()`.
    "cfc": CfC,
    "cfc-diagonal": DiagonalCfC,
}

_TASKS = ("classification", "regression")


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")


_ACTIVATIONS = {"gelu": jax.nn.gelu, "relu": jax.nn.relu}
_RESIDUALS = ("input", "normalised")
_INITS = ("default", "he_uniform")


def _mlp(in_size, out_size, width, activation, init, *, dtype, key) -> eqx.nn.MLP:
    """A one-hidden-layer MLP; `init="he_uniform"`: He-uniform weights and zero
    biases (the reference implementation's), else Equinox's default."""
    mlp = eqx.nn.MLP(
        in_size,
        out_size,
        width,
        1,
        activation=_ACTIVATIONS[activation],
        dtype=dtype,
        key=key,
    )
    if init == "he_uniform":
        ikey = jr.fold_in(key, 1)
        weights = [layer.weight for layer in mlp.layers]
        keys = jr.split(ikey, len(weights))
        he = jax.nn.initializers.he_uniform()
        mlp = eqx.tree_at(
            lambda m: [layer.weight for layer in m.layers],
            mlp,
            [he(k, w.shape, dtype) for k, w in zip(keys, weights)],
        )
        mlp = eqx.tree_at(
            lambda m: [layer.bias for layer in m.layers],
            mlp,
            replace_fn=jnp.zeros_like,
        )
    return mlp


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
        residual: str = "input",
        init: str = "default",
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
        self.mlp = _mlp(
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
    ) -> tuple[Float[Array, "T H"], Solution]:
        """Run the block on a sequence.

        **Arguments:**

        - `h`: the block's input, shape `(T, H)`.
        - `solver`, `discretisation`: how the liquid layer is solved.
        - `dt`: the step sizes, shape `(T,)`.
        - `index`: the block's position, named in error messages.

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
        states = _raise_if_failed(sol, index, self.neuron)
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


# Every RESULTS message, in index order, for the block-naming errors below.
_MESSAGES = tuple(RESULTS._index_to_message)


def _raise_if_failed(sol: Solution, index: int, neuron) -> Array:
    """The states, with a run-time error naming the block and the cause if the
    liquid layer's solve failed (rather than a confusing error further on)."""
    result = jax.lax.stop_gradient(sol.result)
    prefix = (
        f"LrcSSM block {index} ({type(neuron).__name__}): the liquid layer's solve "
        "failed, so the model's output would be garbage. Cause: "
    )
    zero = eqx.branched_error_if(
        jnp.zeros((), sol.states.dtype),
        result != RESULTS.successful,
        result._value,
        [prefix + m for m in _MESSAGES],
    )
    return sol.states + zero


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
    solver: AbstractLiquidSolver
    discretisation: AbstractDiscretisation
    input_size: int = eqx.field(static=True)
    num_outputs: int = eqx.field(static=True)
    hidden_size: int = eqx.field(static=True)
    state_size: int = eqx.field(static=True)
    num_blocks: int = eqx.field(static=True)
    task: str = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    activation: str = eqx.field(static=True)
    norm_affine: bool = eqx.field(static=True)
    residual: str = eqx.field(static=True)
    init: str = eqx.field(static=True)
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
        solver: AbstractLiquidSolver = ParallelNewton(),
        discretisation: AbstractDiscretisation | None = None,
        task: Literal["classification", "regression"] = "classification",
        dt: float = 1.0,
        activation: Literal["gelu", "relu"] = "gelu",
        norm_affine: bool = True,
        residual: Literal["input", "normalised"] = "input",
        init: Literal["default", "he_uniform"] = "default",
        neurons: Mapping[str, NeuronFactory] | None = None,
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
            `"stc"`, `"dense-lrc"`, `"ltc"`, `"gru"`, ...), or a factory called as
            `neuron(D, H, key=key)` that returns any
            [`AbstractLiquidNeuron`][lrc_toolkit.AbstractLiquidNeuron] with
            `state_size=D`, `input_size=H` (e.g.
            `functools.partial(lrc_toolkit.LRC, elastance="none", dtype=jnp.float32)`,
            or your own neuron). Named neurons get the model's `dtype`; a factory
            must create its parameters in it.
        - `solver`: how the liquid layers are solved: any solver of
            [`solve`][lrc_toolkit.solve], e.g.
            [`ParallelNewton()`][lrc_toolkit.ParallelNewton] (the default and the
            paper's choice; `ParallelNewton(fallback=Sequential(), damping=1.0)`
            etc.), [`Sequential()`][lrc_toolkit.Sequential] or
            [`ODE(diffrax.Euler())`][lrc_toolkit.ODE]. With the defaults all compute
            the explicit-Euler recurrence with $\Delta t = 1$.
        - `discretisation`: the map $\Phi$ of the discrete solvers (default
            [`Euler()`][lrc_toolkit.Euler], or [`ClosedForm()`][lrc_toolkit.ClosedForm]
            for CfC neurons; [`ImplicitEuler()`][lrc_toolkit.ImplicitEuler] for
            stiff neurons).
        - `task`: `"classification"` (outputs averaged over the valid steps: logits
            of shape `(num_outputs,)`) or `"regression"` (per-step outputs of shape
            `(T, num_outputs)`).
        - `dt`: the step size $\Delta t$ of the liquid layers when no time stamps are
            given to the model. It sets the neurons' memory: an explicit-Euler LRC
            remembers about $1/(\Delta t\,\kappa)$ samples ($\kappa$ its
            conductance times elastance), about three at the default 1; slow
            signals want a smaller step (SCP1: 0.01; see the training guide).
        - `activation`: of every MLP (encoder, blocks, decoder): `"gelu"` (default)
            or `"relu"` (the reference implementation's).
        - `norm_affine`: whether the LayerNorms have a learned scale and shift
            (default `True`; the reference's have none).
        - `residual`: what the block's MLP output is added to before the output
            LayerNorm: `"input"` (the block's input, default) or `"normalised"` (the
            normalised block input that drives the liquid layer, as the reference
            does).
        - `init`: of the MLPs' weights: `"default"` (Equinox's) or `"he_uniform"`
            (He-uniform weights and zero biases, the reference's).
        - `neurons`: more named neurons, `{name: factory}`, looked up with
            `models.NEURONS` when `neuron` is a name (factories called as
            `factory(D, H, dtype=dtype, key=key)`). A model built from a named neuron
            records the name in its `config`, so that it can be rebuilt (by
            `from_config` given the same `neurons`): the CLI uses this for
            `--neuron package.module:factory`.
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
        if not isinstance(solver, AbstractLiquidSolver):
            raise TypeError(
                "`solver` must be an `lrc_toolkit.AbstractLiquidSolver` such as "
                "`lrc_toolkit.ParallelNewton()`, `Sequential()` or "
                f"`ODE(diffrax.Euler())`, got {solver!r}."
            )
        if task not in _TASKS:
            raise ValueError(f"`task` must be one of {_TASKS}, got {task!r}.")
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"`activation` must be one of {tuple(_ACTIVATIONS)}, got {activation!r}."
            )
        if residual not in _RESIDUALS:
            raise ValueError(
                f"`residual` must be one of {_RESIDUALS}, got {residual!r}."
            )
        if init not in _INITS:
            raise ValueError(f"`init` must be one of {_INITS}, got {init!r}.")
        if not isinstance(norm_affine, bool):
            raise TypeError(f"`norm_affine` must be a bool, got {norm_affine!r}.")
        if not isinstance(dt, int | float) or isinstance(dt, bool) or not dt > 0:
            raise ValueError(f"`dt` must be a positive number, got {dt!r}.")
        if discretisation is not None and not isinstance(
            discretisation, AbstractDiscretisation
        ):
            raise TypeError(
                "`discretisation` must be an `lrc_toolkit.AbstractDiscretisation` such "
                f"as `Euler()`, got {type(discretisation).__name__}."
            )
        dtype = default_float(dtype)
        if isinstance(neuron, str):
            known = {**NEURONS, **(neurons or {})}
            if neuron not in known:
                raise ValueError(
                    f"Unknown neuron {neuron!r}; use one of {sorted(known)}, pass a "
                    "factory `neuron(state_size, input_size, key=key)`, or name your "
                    "own with `neurons={name: factory}`."
                )
            named = known[neuron]
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
        self.encoder = _mlp(
            input_size,
            hidden_size,
            hidden_size,
            activation,
            init,
            dtype=dtype,
            key=ekey,
        )
        self.blocks = tuple(
            LiquidBlock(
                hidden_size,
                state_size,
                factory,
                activation=activation,
                norm_affine=norm_affine,
                residual=residual,
                init=init,
                dtype=dtype,
                key=k,
            )
            for k in bkeys
        )
        self.decoder = _mlp(
            hidden_size,
            num_outputs,
            hidden_size,
            activation,
            init,
            dtype=dtype,
            key=dkey,
        )
        self.activation = activation
        self.norm_affine = norm_affine
        self.residual = residual
        self.init = init
        cfc = isinstance(self.blocks[0].neuron, AbstractCfC)
        if discretisation is None:
            discretisation = ClosedForm() if cfc else Euler()
        elif cfc != isinstance(discretisation, ClosedForm):
            raise ValueError(
                "CfC neurons are closed-form steps: use `discretisation=ClosedForm()` "
                "with them (and only with them); got "
                f"{type(discretisation).__name__} for {type(self.blocks[0].neuron).__name__}."
            )
        self.solver = solver
        self.discretisation = discretisation
        self.input_size = input_size
        self.num_outputs = num_outputs
        self.hidden_size = hidden_size
        self.state_size = state_size
        self.num_blocks = num_blocks
        self.task = task
        self.dt = float(dt)
        self.neuron_name = neuron_name
        self.dtype_name = jnp.dtype(dtype).name

    @property
    def dtype(self) -> jnp.dtype:
        """The floating dtype of the parameters."""
        return jnp.dtype(self.dtype_name)

    @property
    def config(self) -> dict[str, Any] | None:
        """The constructor arguments as a JSON-serialisable dict (the solver and the
        discretisation included), from which
        [`LrcSSM.from_config`][lrc_toolkit.models.LrcSSM.from_config] rebuilds the
        model's structure; `None` if the neuron was given as a factory or the solver
        or discretisation cannot be recorded (a custom one, a sharded recurrence;
        then pass a template model to
        [`load_checkpoint`][lrc_toolkit.training.load_checkpoint])."""
        solver = solver_to_config(self.solver)
        discretisation = discretisation_to_config(self.discretisation)
        if self.neuron_name is None or solver is None or discretisation is None:
            return None
        return {
            "input_size": self.input_size,
            "num_outputs": self.num_outputs,
            "hidden_size": self.hidden_size,
            "state_size": self.state_size,
            "num_blocks": self.num_blocks,
            "neuron": self.neuron_name,
            "solver": solver,
            "discretisation": discretisation,
            "task": self.task,
            "dt": self.dt,
            "activation": self.activation,
            "norm_affine": self.norm_affine,
            "residual": self.residual,
            "init": self.init,
            "dtype": self.dtype_name,
        }

    @classmethod
    def from_config(
        cls,
        config: dict[str, Any],
        *,
        key: PRNGKeyArray,
        neurons: Mapping[str, NeuronFactory] | None = None,
    ) -> "LrcSSM":
        """Build a model from [`LrcSSM.config`][lrc_toolkit.models.LrcSSM.config].

        **Arguments:**

        - `config`: the dict.
        - `key`: a `jax.random.key` for the (fresh) parameters.
        - `neurons`: the extra named neurons the model was built with (a config
            never imports code by itself).

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
            "discretisation",
            "task",
            "dt",
            "activation",
            "norm_affine",
            "residual",
            "init",
            "dtype",
        }
        unknown = set(config) - known
        if unknown:
            raise ValueError(f"Unknown LrcSSM config keys {sorted(unknown)}.")
        if "solver" in config:
            config["solver"] = solver_from_config(config["solver"])
        if "discretisation" in config:
            config["discretisation"] = discretisation_from_config(
                config["discretisation"]
            )
        input_size = config.pop("input_size")
        num_outputs = config.pop("num_outputs")
        return cls(input_size, num_outputs, **config, neurons=neurons, key=key)

    def _steps(self, T: int, ts, mask=None) -> Float[Array, " T"]:
        """The step sizes: from the time stamps `ts` (their differences, the first
        step repeating the second) or the model's constant `dt`. Padded steps
        (`mask` False) step by `dt`, whatever their time stamps: they come after the
        real ones and cannot influence them."""
        if ts is None:
            return jnp.full((T,), self.dt, self.dtype)
        ts = jnp.asarray(ts, self.dtype)
        if ts.shape != (T,):
            raise ValueError(
                f"`ts` must have one time stamp per step, shape ({T},); got {ts.shape}."
            )
        dt = steps_from_times(ts, self.dt)
        if mask is not None:
            dt = jnp.where(mask, dt, jnp.asarray(self.dt, self.dtype))
        return dt

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

    def _forward(self, x, mask, ts) -> tuple[Array, tuple[Solution, ...]]:
        x, mask = self._check(x, mask)
        dt = self._steps(x.shape[0], ts, mask)
        h = jax.vmap(self.encoder)(x)
        solutions = []
        for i, block in enumerate(self.blocks):
            h, sol = block(h, self.solver, self.discretisation, dt, i)
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

        **Arguments:** as for `__call__`.

        **Returns:**

        A tuple with one `Solution` per block.
        """
        return self._forward(x, mask, ts)[1]

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

        Classification: logits of shape `(num_outputs,)`, the mean of the per-step
        outputs over the valid steps. Regression: per-step outputs of shape
        `(T, num_outputs)` (padded rows are meaningless; mask them in the loss).
        """
        out = self.per_step(x, mask, ts=ts)
        if self.task == "regression":
            return out
        if mask is None:
            return jnp.mean(out, axis=0)
        mask = jnp.asarray(mask)
        total = jnp.sum(jnp.where(mask[:, None], out, 0), axis=0)
        count = jnp.maximum(jnp.sum(mask), 1).astype(out.dtype)
        return total / count

    # Streaming use -------------------------------------------------------------

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
