"""The LrcSSM sequence model and its blocks."""

from .._neurons.registry import NEURONS as NEURONS
from ._arguments import DEFAULTS_0_2 as DEFAULTS_0_2
from ._block import LiquidBlock as LiquidBlock
from ._lrcssm import LrcSSM as LrcSSM


def __getattr__(name: str):
    # The paper's Table 5 presets hold training settings too, so they live in
    # `lrc_toolkit.training`; they stay importable from here, and only loading
    # them loads the training loop (`import lrc_toolkit.models` does not).
    if name in ("Preset", "PRESETS"):
        from .. import training

        return getattr(training, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
