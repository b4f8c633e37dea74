"""Data: UEA classification data sets through aeon, and the paper's protocol
(merge, deduplicate, permute with a seed, split 70/15/15, normalise on train) for
your own arrays; time stamps for irregularly sampled series (the random drop of the
neural-CDE protocol, per-step Δt); forecasting windows cut from long series."""

from ._dataset import Split as Split, UEADataset as UEADataset
from ._files import load_file as load_file
from ._forecast import forecast_windows as forecast_windows
from ._protocol import load_arrays as load_arrays, split_sizes as split_sizes
from ._times import DEFAULT_DROP_SEED as DEFAULT_DROP_SEED, time_steps as time_steps
from ._uea import (
    BUNDLED_DATASETS as BUNDLED_DATASETS,
    default_data_dir as default_data_dir,
    load_uea as load_uea,
    PAPER_DATASETS as PAPER_DATASETS,
    PAPER_SEEDS as PAPER_SEEDS,
)
