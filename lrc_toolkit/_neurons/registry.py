"""The neurons known by name: one table, used by the model, the CLI and the
ablation."""

from collections.abc import Callable

from .base import AbstractLiquidNeuron
from .cfc import CfC, DiagonalCfC
from .complex_lrc import ComplexLRC
from .dense_lrc import DenseLRC
from .gated import GRUNeuron, LSTMNeuron, MGUNeuron
from .lrc import LRC, STC
from .ltc import LTC


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
