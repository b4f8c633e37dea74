"""The LrcSSM sequence model and its blocks."""

from ._lrcssm import LiquidBlock as LiquidBlock, LrcSSM as LrcSSM, NEURONS as NEURONS
from ._presets import Preset as Preset, PRESETS as PRESETS
