"""The paper's Table 5, kept importable from `lrc_toolkit.models`: one definition,
in `lrc_toolkit.training` (a `Preset` holds the model sizes and the training
settings)."""

from ..training._config import Preset as Preset, PRESETS as PRESETS
