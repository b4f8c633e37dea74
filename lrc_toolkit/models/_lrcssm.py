"""The LrcSSM model: its fields, its constructor and its configuration (the forward
pass and the streaming use are its base classes, in `_forward.py` and
`_streaming.py`)."""

from collections.abc import Mapping, Sequence
from typing import Literal

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import PRNGKeyArray

from .._discretise import AbstractDiscretisation
from .._neurons._init import default_float
from .._neurons.registry import NeuronFactory
from .._solve.base import AbstractLiquidSolver
from .._solve.newton import ParallelNewton
from ._arguments import (
    check_arguments,
    chosen_discretisation,
    neuron_factory,
    time_scaled,
)
from ._block import LiquidBlock
from ._config import Configurable
from ._forward import SequenceForward
from ._mlp import mlp
from ._streaming import Streaming


class LrcSSM(SequenceForward, Streaming, Configurable):
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

    The model of Farsang, Hasani, Rus and Grosu (NeurIPS 2025); the reference is
    with [`LRC`][lrc_toolkit.LRC].
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
    neuron_init: str | None = eqx.field(static=True)
    time_scales: tuple[float, float] | None = eqx.field(static=True)
    readout: str = eqx.field(static=True)
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
        residual: Literal["input", "normalised"] = "normalised",
        init: Literal["he_uniform", "equinox"] = "he_uniform",
        neuron_init: str | None = None,
        time_scales: Sequence[float] | None = (1e-3, 1.0),
        readout: Literal["mean", "last", "per_step"] | None = None,
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
        - `discretisation`: the map $\Phi$ of the discrete solvers (default: the
            neuron's
            [`default_discretisation()`][lrc_toolkit.AbstractLiquidNeuron.default_discretisation]:
            [`Euler()`][lrc_toolkit.Euler], [`SemiImplicitEuler()`][lrc_toolkit.SemiImplicitEuler]
            for `LTC`, [`ClosedForm()`][lrc_toolkit.ClosedForm] for CfC neurons;
            [`ImplicitEuler()`][lrc_toolkit.ImplicitEuler] for stiff neurons).
        - `task`: `"classification"` (outputs averaged over the valid steps: logits
            of shape `(num_outputs,)`) or `"regression"` (per-step outputs of shape
            `(T, num_outputs)`).
        - `dt`: the step size $\Delta t$ of the liquid layers when no time stamps are
            given to the model. With `time_scales=None` it alone sets the neurons'
            memory: an explicit-Euler LRC remembers about
            $1/(\Delta t\,\kappa)$ samples ($\kappa$ its conductance times
            elastance), about three at 1; the learned time scales make a
            hand-picked step unnecessary.
        - `activation`: of every MLP (encoder, blocks, decoder): `"gelu"` (default)
            or `"relu"` (the reference implementation's).
        - `norm_affine`: whether the LayerNorms have a learned scale and shift
            (default `True`; the reference's have none).
        - `residual`: what the block's MLP output is added to before the output
            LayerNorm: `"normalised"` (default: the normalised block input that
            drives the liquid layer, as the reference implementation does) or
            `"input"` (the block's input, the 0.2 default). The normalised skip
            keeps the input's signal at unit scale beside the liquid layer's
            states: with the responsive start and learned time scales, the
            0.2 skip left ArrowHead at 45.8 % after 30 epochs, the normalised one
            64.6 % (the 0.2 model 65.6 %; `benchmarks/learning/`).
        - `init`: of the MLPs (encoder, blocks, decoder): `"he_uniform"` (default:
            zero biases and He-uniform weights as the reference implementation
            makes them, `jax.nn.initializers.he_uniform()` on Equinox's
            `(out, in)` weights: uniform in $\pm\sqrt{6/\text{out}}$) or
            `"equinox"` (Equinox's uniform weights and biases in
            $\pm 1/\sqrt{\text{in}}$, the 0.2 default). With Equinox's biases a
            low-dimensional input leaves the first LayerNorm as a large constant
            vector plus a smaller varying part (over time: mean 0.6, standard
            deviation 0.5 per feature on a two-channel series; He: 0.15 and
            0.9), and the blocks' MLPs add the liquid states to the residual
            stream at about 5 % of its scale (He: comparable to it), so the
            logits start almost independent of the input (standard deviation
            across series 0.002-0.01; He: 0.2-1.2). With He-uniform MLPs the
            model leaves chance in the first epochs (`benchmarks/learning/`).
        - `neuron_init`: the initialisation of a named neuron, passed to it as
            `init=`; `None` (default): the registry's, which for the LRC family
            (its variants, `"complex-lrc*"` and `"dense-lrc"`) is `"responsive"`
            (the state follows its input from the first step);
            `"reference"` is the paper's. Not allowed with a neuron factory
            (choose the initialisation inside it).
        - `time_scales`: `(low, high)`: every liquid layer learns a time scale per
            state component, $dx_i/dt = \Delta_i f_i(x, u)$: half of the neurons
            start at `high` (the layer follows its input from the first step),
            the others log-uniformly over `[low, high]` (see
            [`TimeScaled`][lrc_toolkit.TimeScaled], whose `max_scale` is
            `max(1, 2 high)`). Neuron $i$ then steps by $\Delta_i\,\Delta t$:
            memories from one sample to about $1/(\text{low}\,\Delta t)$ samples
            in one layer, learned per data set instead of a hand-picked `dt`.
            Default `(1e-3, 1.0)`; the CLI uses `(1/T, 1)` for sequences of length
            $T$. `None`: no time scales (every component steps by `dt`, the 0.2
            and the paper's model).
        - `readout`: how per-step outputs become the model's output: `"mean"` over
            the valid steps, `"last"` valid step, or `"per_step"` (one output per
            step). Default: `"mean"` for classification, `"per_step"` for
            regression.
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
        check_arguments(
            sizes=dict(
                input_size=input_size,
                num_outputs=num_outputs,
                hidden_size=hidden_size,
                state_size=state_size,
                num_blocks=num_blocks,
            ),
            solver=solver,
            discretisation=discretisation,
            task=task,
            dt=dt,
            activation=activation,
            norm_affine=norm_affine,
            residual=residual,
            init=init,
            time_scales=time_scales,
            readout=readout,
        )
        dtype = default_float(dtype)
        factory, neuron_name = neuron_factory(neuron, neurons, dtype, neuron_init)
        if time_scales is not None:
            time_scales = (float(time_scales[0]), float(time_scales[1]))
            factory = time_scaled(factory, time_scales)
        ekey, dkey, *bkeys = jr.split(key, num_blocks + 2)
        self.encoder = mlp(
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
        self.decoder = mlp(
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
        self.solver = solver
        self.discretisation = chosen_discretisation(
            self.blocks[0].neuron, discretisation
        )
        self.input_size = input_size
        self.num_outputs = num_outputs
        self.hidden_size = hidden_size
        self.state_size = state_size
        self.num_blocks = num_blocks
        self.task = task
        self.dt = float(dt)
        self.neuron_init = neuron_init
        self.time_scales = time_scales
        self.readout = readout or ("per_step" if task == "regression" else "mean")
        self.neuron_name = neuron_name
        self.dtype_name = jnp.dtype(dtype).name

    @property
    def dtype(self) -> jnp.dtype:
        """The floating dtype of the parameters."""
        return jnp.dtype(self.dtype_name)
