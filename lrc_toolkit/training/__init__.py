"""Training, evaluation and crash-safe checkpoints for LrcSSM models."""

from ._checkpoint import (
    CheckpointError as CheckpointError,
    read_checkpoint as read_checkpoint,
    save_checkpoint as save_checkpoint,
)
from ._config import TrainConfig as TrainConfig
from ._fit import (
    check_output_dir as check_output_dir,
    evaluate as evaluate,
    fit as fit,
    FitResult as FitResult,
    load_checkpoint as load_checkpoint,
    make_optimiser as make_optimiser,
)
