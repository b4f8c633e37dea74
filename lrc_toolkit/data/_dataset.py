import equinox as eqx
import numpy as np
from jaxtyping import Bool, Float32, Float64, Int32, Int64


class Split(eqx.Module):
    """One split (train, validation or test) of a dataset, as padded NumPy arrays.

    Every series is zero-padded **at the end** to the dataset's maximum length `T`
    (the same `T` for all three splits), so that a batch is one array.

    **Attributes:**

    - `x`: the inputs, float32 of shape `(N, T, P)`; steps `t >= lengths[n]` are zero.
        When the dataset was loaded with `time_channel=True`, channel 0 is the time
        channel.
    - `mask`: bool of shape `(N, T)`, `True` on the real (non-padded) steps.
    - `y`: the targets: int32 class indices of shape `(N,)` in
        `0 .. num_classes - 1` for classification; float32 of shape `(N,)` or
        `(N, K)` for regression, or `(N, T, K)` for per-step targets (zero on
        padded steps).
    - `lengths`: int32 of shape `(N,)`, the number of real steps of each series.
    - `indices`: int64 of shape `(N,)`, the position of each case in the collection
        *before* deduplication and permutation (for a UEA dataset: the archive's
        train cases followed by its test cases), so that every case can be traced
        back to its source.
    - `times`: the time stamps of the steps, float64 of shape `(N, T)`, or `None`
        for regularly sampled series (unit steps: the model's own `dt`). Set when
        the data set was loaded with time stamps (`load_arrays(..., times=...)`) or
        with samples dropped (`drop_rate > 0`). The real steps' stamps are strictly
        increasing; each padded step continues the last real step (stamp
        $t_{L} + j\\,(t_{L} - t_{L-1})$ for the $j$-th padded step of a series of
        $L$ real steps, $t_L + j$ when $L = 1$), so every $\\Delta t$ is positive.
        `time_steps(times, mask)` turns them into the per-step $\\Delta t$.
    """

    x: Float32[np.ndarray, "N T P"]
    mask: Bool[np.ndarray, "N T"]
    y: Int32[np.ndarray, " N"] | Float32[np.ndarray, " N *K"]
    lengths: Int32[np.ndarray, " N"]
    indices: Int64[np.ndarray, " N"]
    times: Float64[np.ndarray, "N T"] | None = None

    def __check_init__(self):
        n, t = self.mask.shape
        expected = np.arange(t)[None, :] < self.lengths[:, None]
        if not np.array_equal(self.mask, expected):
            raise ValueError(
                "`Split.mask` must be True exactly on the first `lengths[n]` steps of "
                "each series (series are padded at the end)."
            )
        if self.times is not None:
            if self.times.shape != (n, t):
                raise ValueError(
                    f"`Split.times` must have the shape of `mask`, {(n, t)}; got "
                    f"{self.times.shape}."
                )
            if not np.isfinite(self.times).all() or np.any(
                np.diff(self.times, axis=1) <= 0
            ):
                raise ValueError(
                    "`Split.times` must be finite and strictly increasing along each "
                    "series, padded steps included (continue the last step over the "
                    "padding), so that every step size is positive."
                )

    def __len__(self) -> int:
        return self.x.shape[0]


class UEADataset(eqx.Module):
    """A dataset split into train / validation / test following the paper's
    protocol; returned by [`load_uea`][lrc_toolkit.data.load_uea] and
    [`load_arrays`][lrc_toolkit.data.load_arrays].

    **Attributes:**

    - `name`: the dataset's name.
    - `classes`: the class names, in the order of the integer labels (empty for
        regression).
    - `train`, `val`, `test`: the three [`Split`][lrc_toolkit.data.Split]s.
    - `seed`: the seed of the permutation that produced the split.
    - `time_channel`: whether channel 0 of `x` is a time channel added by the toolkit.
    - `mean`, `std`: the per-channel statistics (of the data channels, not the time
        channel) fitted on the training split and used to normalise all three splits;
        `None` when loaded with `normalise=False`.
    - `num_duplicates`: how many duplicate cases were dropped before splitting.
    - `drop_rate`, `drop_seed`: the fraction of each series' samples dropped at
        random and the seed of that drop (see `load_arrays`); `drop_rate` is 0 when
        nothing was dropped.

    **Properties:** `num_classes`, `input_size` (channels `P`, including the time
    channel if any), `max_length` (the padded length `T`), `has_times` (whether the
    splits carry time stamps).
    """

    name: str
    classes: tuple[str, ...]
    train: Split
    val: Split
    test: Split
    seed: int
    time_channel: bool
    mean: Float32[np.ndarray, " C"] | None
    std: Float32[np.ndarray, " C"] | None
    num_duplicates: int
    drop_rate: float = 0.0
    drop_seed: int | None = None

    @property
    def has_times(self) -> bool:
        """Whether the splits carry time stamps (`Split.times` is not `None`)."""
        return self.train.times is not None

    @property
    def num_classes(self) -> int:
        """The number of classes (0 for a regression dataset)."""
        return len(self.classes)

    @property
    def input_size(self) -> int:
        """The number of input channels `P` (including the time channel, if any)."""
        return self.train.x.shape[-1]

    @property
    def max_length(self) -> int:
        """The padded length `T`: the longest series of the whole dataset."""
        return self.train.x.shape[1]

    @property
    def splits(self) -> dict[str, Split]:
        """`{"train": ..., "val": ..., "test": ...}`."""
        return {"train": self.train, "val": self.val, "test": self.test}
