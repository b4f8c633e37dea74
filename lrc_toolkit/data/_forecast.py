"""Forecasting windows: one or several long series cut into (past window, next
`horizon` steps) pairs, split chronologically and normalised with training
statistics only."""

from collections.abc import Sequence

import numpy as np

from .._checks import check_integer
from ._dataset import Split, UEADataset
from ._protocol import _check_fractions, DEFAULT_FRACTIONS, split_sizes


def forecast_windows(
    series: np.ndarray | Sequence[np.ndarray],
    horizon: int,
    window: int | None = None,
    *,
    fractions: Sequence[float | int] = DEFAULT_FRACTIONS,
    normalise: bool = True,
    relative: bool = False,
    name: str = "series",
) -> UEADataset:
    r"""Cut series into forecasting windows: the input is a window of `window`
    past steps, the target the next `horizon` steps.

    For a series $x_0, \dots, x_{T-1}$ (each $x_t \in \mathbb{R}^C$), the window
    starting at step $s$ has the input $x_s, \dots, x_{s+L-1}$ ($L$ = `window`)
    and the target $x_{s+L}, \dots, x_{s+L+h-1}$ ($h$ = `horizon`), flattened
    time-major into one vector of $h\,C$ numbers (`y.reshape(n, h, C)` gives it
    back). Every start $s$ is used (stride 1).

    **Chronological split.** The time axis of each series is cut at
    $b_1 = \lfloor f_1 T \rfloor$ and $b_2 = \lfloor (f_1 + f_2) T \rfloor$ (the
    sizes of [`split_sizes`][lrc_toolkit.data.split_sizes]`(T, fractions)`). The
    training windows lie entirely in $[0, b_1)$, inputs and targets; the
    validation windows have their targets in $[b_1, b_2)$ and the test windows
    theirs in $[b_2, T)$. Inputs may reach back into the earlier parts (they are
    the known past), but no window of one split reaches into the targets of a
    later split: nothing the model is trained or selected on overlaps what it is
    tested on.

    **Normalisation** (`normalise=True`): each channel is shifted and scaled by
    the mean and (population) standard deviation of the training part
    $[0, b_1)$ of the series (all series together); inputs and targets alike, so
    metrics are in units of the training standard deviation. `UEADataset.mean`
    and `.std` hold the statistics, to map forecasts back:
    `y.reshape(n, h, C) * std + mean`.

    **Relative windows** (`relative=True`): each window's last input value
    $x_{s+L-1}$ is subtracted from its inputs and its targets (after the
    normalisation), so that the model sees and forecasts changes from the present
    rather than levels: a trending series then stays in the range the model was
    trained on. An error of a forecast is the same either way (the shift cancels),
    and so are the naive baselines' (the last value forecasts 0).

    **Arguments:**

    - `series`: one series of shape `(T,)` or `(T, C)`, several of shape
        `(N, T, C)`, or a sequence of `N` arrays of shapes `(T_i, C)` (each is
        split at its own cut points). Finite values only.
    - `horizon`: $h \ge 1$, the number of steps to forecast.
    - `window`: $L \ge 1$, the number of past steps the model sees. Default:
        $\min(4h, \lfloor b_1 / 2 \rfloor)$ for the shortest series (at least
        1): four horizons, but at most half of the training part.
    - `fractions`: the train / validation / test fractions of each series' time
        axis (three non-negative numbers summing to 1).
    - `normalise`, `relative`: see above.
    - `name`: a name for the data set, used in error messages.

    **Returns:**

    A [`UEADataset`][lrc_toolkit.data.UEADataset] for regression (`classes` is
    empty): each [`Split`][lrc_toolkit.data.Split] has `x` of shape
    `(n, window, C)` (no padding: `mask` is all `True`), `y` of shape
    `(n, horizon * C)`, and `indices` the first step $s$ of each window (plus
    $n \cdot T$ for series $n$ of several, $T$ the longest). The windows are in
    chronological order. `seed` is 0 (the split is not random).

    **Raises:** `ValueError` before anything is built when the values are not
    finite, when `horizon` is at least a series' length, when
    `window + horizon` exceeds it, or when a split would get no window (with the
    numbers, and what to change).
    """
    if not isinstance(name, str):
        raise TypeError(f"`name` must be a string, got {type(name).__name__}.")
    fractions = _check_fractions(fractions)
    items = _as_series(series, name)
    horizon = check_integer("horizon", horizon, any_integral=True)
    lengths = [s.shape[0] for s in items]
    for i, length in enumerate(lengths):
        if horizon >= length:
            raise ValueError(
                f"{name}: the horizon {horizon} is not shorter than the series"
                + (f" {i}" if len(items) > 1 else "")
                + f" ({length} steps): a forecast needs past steps to start from. "
                "Use a shorter horizon."
            )
    cuts = [_cuts(length, fractions) for length in lengths]
    if window is None:
        window = max(1, min(4 * horizon, min(b1 for b1, _ in cuts) // 2))
    window = check_integer("window", window, any_integral=True)
    for i, length in enumerate(lengths):
        if window + horizon > length:
            raise ValueError(
                f"{name}: a window of {window} steps plus the horizon of {horizon} "
                f"({window + horizon} steps) is longer than the series"
                + (f" {i}" if len(items) > 1 else "")
                + f" ({length} steps). Use a shorter window or horizon."
            )
    starts = [_starts(length, b, window, horizon) for length, b in zip(lengths, cuts)]
    for part, split in enumerate(("train", "val", "test")):
        empty = [i for i, s in enumerate(starts) if s[part].size == 0]
        if empty:
            i = empty[0]
            b1, b2 = cuts[i]
            raise ValueError(
                f"{name}: the {split} part of series {i} ({lengths[i]} steps cut at "
                f"{b1} and {b2} by the fractions {fractions}) holds no window of "
                f"{window} input steps and {horizon} target steps. Use a shorter "
                "window or horizon, or other fractions."
            )
    if normalise:
        train = np.concatenate([s[:b1] for s, (b1, _) in zip(items, cuts)])
        mean, std = train.mean(axis=0), train.std(axis=0)
        std = np.where(std > 0, std, 1.0)
        items = [(s - mean) / std for s in items]
    else:
        mean = std = None
    stride = max(lengths)
    splits = [
        _split(items, [s[part] for s in starts], window, horizon, stride, relative)
        for part in range(3)
    ]
    return UEADataset(
        name=name,
        classes=(),
        train=splits[0],
        val=splits[1],
        test=splits[2],
        seed=0,
        time_channel=False,
        mean=None if mean is None else mean.astype(np.float32),
        std=None if std is None else std.astype(np.float32),
        num_duplicates=0,
    )


def _as_series(series, name: str) -> list[np.ndarray]:
    if isinstance(series, np.ndarray) and series.dtype != object:
        if series.ndim == 1:
            items = [series[:, None]]
        elif series.ndim == 2:
            items = [series]
        elif series.ndim == 3:
            items = list(series)
        else:
            raise ValueError(
                f"{name}: the series must have shape (T,), (T, C) or (N, T, C); got "
                f"{series.shape}."
            )
    elif isinstance(series, (str, bytes)) or not isinstance(series, Sequence):
        raise TypeError(
            f"{name}: the series must be an array of shape (T,), (T, C) or "
            f"(N, T, C), or a sequence of (T_i, C) arrays; got {type(series).__name__}."
        )
    else:
        items = list(series)
        if not items:
            raise ValueError(f"{name}: no series.")
    out = []
    for i, item in enumerate(items):
        arr = np.asarray(item)
        if arr.ndim == 1:
            arr = arr[:, None]
        if (
            arr.ndim != 2
            or arr.dtype == object
            or not np.issubdtype(arr.dtype, np.number)
            or np.iscomplexobj(arr)
        ):
            raise ValueError(
                f"{name}: series {i} must be a real array of shape (T, C); got "
                f"{arr.dtype} of shape {arr.shape}."
            )
        if not np.isfinite(arr).all():
            bad = int((~np.isfinite(arr)).any(axis=1).sum())
            raise ValueError(
                f"{name}: series {i} has {bad} steps with NaN or infinite values; "
                "the values are both inputs and targets of a forecast. Impute or "
                "cut them first."
            )
        out.append(arr.astype(np.float64))
    if len({s.shape[1] for s in out}) != 1:
        raise ValueError(
            f"{name}: all series must have the same number of channels; found "
            f"{sorted({s.shape[1] for s in out})}."
        )
    return out


def _cuts(length: int, fractions) -> tuple[int, int]:
    n1, n2, _ = split_sizes(length, fractions)
    return n1, n1 + n2


def _starts(length: int, cuts, window: int, horizon: int):
    """The first steps of the train, validation and test windows of one series."""
    b1, b2 = cuts
    # A window starting at s covers [s, s + window + horizon); its targets start at
    # s + window. Train: the whole window in [0, b1); val: targets in [b1, b2);
    # test: targets in [b2, length).
    train = np.arange(0, b1 - window - horizon + 1)
    val = np.arange(max(b1 - window, 0), b2 - window - horizon + 1)
    test = np.arange(max(b2 - window, 0), length - window - horizon + 1)
    return train, val, test


def _split(items, starts, window, horizon, stride, relative=False) -> Split:
    xs, ys, indices = [], [], []
    for n, (s, first) in enumerate(zip(items, starts)):
        for start in first:
            inputs = s[start : start + window]
            targets = s[start + window : start + window + horizon]
            if relative:
                inputs, targets = inputs - inputs[-1], targets - inputs[-1]
            xs.append(inputs)
            ys.append(targets.reshape(-1))
            indices.append(n * stride + start)
    x = np.stack(xs).astype(np.float32)
    return Split(
        x=x,
        mask=np.ones(x.shape[:2], dtype=bool),
        y=np.stack(ys).astype(np.float32),
        lengths=np.full((x.shape[0],), window, dtype=np.int32),
        indices=np.asarray(indices, dtype=np.int64),
    )
