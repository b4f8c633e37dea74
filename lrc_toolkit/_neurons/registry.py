"""The neurons known by name: one table, used by the model, the CLI and the
ablation."""

from collections.abc import Callable

from .base import AbstractLiquidNeuron
from .cfc import CfC, DiagonalCfC
from .complex_lrc import ComplexLRC
from .dense_lrc import DenseLRC
from .gated import GRUNeuron, LSTMNeuron, MGUNeuron
from .lrc import LRC
from .ltc import LTC


NeuronFactory = Callable[..., AbstractLiquidNeuron]


def _responsive(cls, **options) -> NeuronFactory:
    """An LRC-family entry (`LRC`, `ComplexLRC`, `DenseLRC`): the responsive
    initialisation unless the caller passes `init=` (e.g.
    `LrcSSM(neuron_init="reference")`, the paper's)."""

    def factory(D, P, *, init="responsive", **kw):
        return cls(D, P, init=init, **options, **kw)

    return factory


# Neurons known by name: a model built from one of these can be rebuilt from its
# `config` alone (the CLI and checkpoints rely on it). Each entry is called as
# `factory(state_size, input_size, *, dtype, key)`; the LRC family (complex and
# dense too) starts from the responsive initialisation (its state follows its input
# from the first step; `init="reference"` gives the paper's).
NEURONS: dict[str, NeuronFactory] = {
    "lrc": _responsive(LRC),
    "lrc-symmetric": _responsive(LRC, elastance="symmetric"),
    "lrc-input-elastance": _responsive(LRC, input_elastance=True),
    "stc": _responsive(LRC, elastance="none"),
    "dense-lrc": _responsive(DenseLRC),
    "ltc": LTC,
    # The paper's ablations (Tables 8-11): diagonal gated cells, LRC without state
    # dependence in A (and b), complex self-synapses.
    "gru": GRUNeuron,
    "mgu": MGUNeuron,
    "lstm": LSTMNeuron,
    "lrc-au-bxu": _responsive(LRC, elastance="none", state_dependence="update"),
    "lrc-au-bu": _responsive(LRC, elastance="none", state_dependence="none"),
    "complex-lrc-gk": _responsive(ComplexLRC, complex_parameters=("w_x", "h_x")),
    "complex-lrc-gka": _responsive(
        ComplexLRC, complex_parameters=("w_x", "h_x", "sigma_x")
    ),
    "complex-lrc": _responsive(ComplexLRC),
    # Closed-form continuous-time cells (Hasani et al., 2022): the model steps them
    # with `ClosedForm()`.
    "cfc": CfC,
    "cfc-diagonal": DiagonalCfC,
}
