"""Training, evaluation and crash-safe checkpoints for Equinox sequence models
(LrcSSM by default)."""

from ._checkpoint import (
    CheckpointError as CheckpointError,
    read_checkpoint as read_checkpoint,
    save_checkpoint as save_checkpoint,
)
from ._config import (
    ABLATION_PRESET as ABLATION_PRESET,
    DEFAULT_PRESET as DEFAULT_PRESET,
    Preset as Preset,
    PRESETS as PRESETS,
    PROTOCOLS as PROTOCOLS,
    SCHEDULES as SCHEDULES,
    TrainConfig as TrainConfig,
)
from ._fit import (
    evaluate as evaluate,
    fit as fit,
    FitResult as FitResult,
    load_checkpoint as load_checkpoint,
)
from ._run_dir import check_output_dir as check_output_dir
from ._steps import make_optimiser as make_optimiser
from ._stopping import EarlyStopping as EarlyStopping
