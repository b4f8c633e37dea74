"""The LrcSSM sequence model and its blocks."""

from .._neurons.registry import NEURONS as NEURONS
from ._block import LiquidBlock as LiquidBlock
from ._lrcssm import LrcSSM as LrcSSM
from ._presets import Preset as Preset, PRESETS as PRESETS
