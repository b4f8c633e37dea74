"""Baselines to put beside LrcSSM in a results table.

MiniRocket (Dempster, Schmidt, Webb, 2021) is what a practitioner tries first on a
UEA data set: random convolutional features and a ridge classifier (or, for
regression, a ridge regressor), fitted in seconds. The paper's protocol splits are
used unchanged. For forecasting, the naive forecasts every forecaster must beat:
the last value, and the value one season earlier.
"""

import time
from typing import Any

import numpy as np

from . import _checks


def _series(split) -> np.ndarray:
    """`(N, channels, T)` as aeon expects, padded steps set to zero."""
    x = np.asarray(split.x, dtype=np.float64)
    mask = getattr(split, "mask", None)
    if mask is not None:
        x = np.where(np.asarray(mask)[:, :, None], x, 0.0)
    return np.transpose(x, (0, 2, 1))


def minirocket(train, test, *, seed: int = 0, val=None) -> dict[str, Any]:
    """Fit aeon's `MiniRocketClassifier` on a training split and score it.

    **Arguments:**

    - `train`, `test`: splits with `x` (N, T, C), optional `mask` (N, T) and `y`
        (N,), e.g. `load_uea(...).train` and `.test`. Padding (where `mask` is
        `False`) is set to zero.
    - `seed`: the random state of the features.
    - `val`: optionally a validation split, scored too (MiniRocket does not use it
        for fitting).

    **Returns:**

    `{"test_accuracy", "val_accuracy" (or None), "seconds"}`; `seconds` is the fit
    time.
    """
    from ._extras import require

    MiniRocketClassifier = require(
        "aeon.classification.convolution_based", "The MiniRocket baseline"
    ).MiniRocketClassifier

    start = time.perf_counter()
    clf = MiniRocketClassifier(random_state=seed)
    clf.fit(_series(train), np.asarray(train.y))
    seconds = time.perf_counter() - start

    def accuracy(split):
        return float(np.mean(clf.predict(_series(split)) == np.asarray(split.y)))

    return {
        "test_accuracy": accuracy(test),
        "val_accuracy": None if val is None else accuracy(val),
        "seconds": seconds,
    }


def _errors(prediction: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    err = np.asarray(prediction, np.float64) - np.asarray(target, np.float64)
    return float(np.mean(err**2)), float(np.mean(np.abs(err)))


def minirocket_regressor(train, test, *, seed: int = 0, val=None) -> dict[str, Any]:
    """Fit aeon's `MiniRocketRegressor` (MiniRocket features and a `RidgeCV`) on a
    training split and score it by MSE and MAE.

    **Arguments:**

    - `train`, `test`: splits with `x` (N, T, C), optional `mask` (N, T) and float
        targets `y` of shape (N,) or (N, K) (one per series; per-step targets are
        refused). Padding is set to zero. With K > 1 outputs one regressor is
        fitted per output (same random features).
    - `seed`: the random state of the features.
    - `val`: optionally a validation split, scored too.

    **Returns:**

    `{"test_mse", "test_mae", "val_mse", "val_mae" (`None` without `val`),
    "seconds"}`; the errors are averaged over cases and outputs, `seconds` is the
    fit time.
    """
    from ._extras import require

    MiniRocketRegressor = require(
        "aeon.regression.convolution_based", "The MiniRocket regression baseline"
    ).MiniRocketRegressor

    def targets(split):
        y = np.asarray(split.y, dtype=np.float64)
        if y.ndim == 1:
            y = y[:, None]
        if y.ndim != 2:
            raise ValueError(
                f"The MiniRocket regressor predicts one target per series; got "
                f"targets of shape {y.shape} (per-step targets?)."
            )
        return y

    y_train = targets(train)
    start = time.perf_counter()
    models = [
        MiniRocketRegressor(random_state=seed).fit(_series(train), y_train[:, k])
        for k in range(y_train.shape[1])
    ]
    seconds = time.perf_counter() - start

    def score(split):
        x = _series(split)
        prediction = np.stack([m.predict(x) for m in models], axis=1)
        return _errors(prediction, targets(split))

    return {**_scored(score, test, val), "seconds": seconds}


def _scored(score, test, val) -> dict[str, Any]:
    """`{"test_mse", "test_mae", "val_mse", "val_mae"}` from `score(split) -> (mse,
    mae)` (the validation entries `None` without `val`)."""
    test_mse, test_mae = score(test)
    val_mse, val_mae = (None, None) if val is None else score(val)
    return {
        "test_mse": test_mse,
        "test_mae": test_mae,
        "val_mse": val_mse,
        "val_mae": val_mae,
    }


def training_mean(train, test, *, val=None) -> dict[str, Any]:
    """The reference every regressor must beat: predict the mean target of the
    training split (per output; over the real steps for per-step targets).

    **Arguments:**

    - `train`, `test`: splits with float targets `y` of shape (N,), (N, K) or
        (N, T, K) (then with `mask` (N, T)).
    - `val`: optionally a validation split, scored too.

    **Returns:**

    `{"test_mse", "test_mae", "val_mse", "val_mae" (`None` without `val`)}`.
    """

    def values(split):
        y = np.asarray(split.y, np.float64)
        if y.ndim == 3:
            mask = getattr(split, "mask", None)
            return y.reshape(-1, y.shape[-1]) if mask is None else y[np.asarray(mask)]
        return y.reshape(y.shape[0], -1)

    mean = values(train).mean(axis=0)

    def score(split):
        target = values(split)
        return _errors(np.broadcast_to(mean, target.shape), target)

    return _scored(score, test, val)


def naive_forecasts(split, *, season: int | None = None) -> np.ndarray:
    r"""The naive forecasts of forecasting windows: the last value, or with
    `season` $m$ the seasonal naive forecast.

    With $t$ the last (valid) input step of a window and $h$ steps to forecast,
    the naive forecast of step $t + j$ ($j = 1, \dots, h$) is $x_t$; the seasonal
    naive one is $x_{t + j - m \lceil j/m \rceil}$, the value one season before
    (the last observed season repeated).

    **Arguments:**

    - `split`: forecasting windows, e.g. a split of
        [`forecast_windows`][lrc_toolkit.data.forecast_windows]: `x` (N, L, C),
        optional `mask` (N, L), and `y` (N, h C), the next `h` steps flattened
        time-major (used for its shape only).
    - `season`: the season length $m \ge 1$ (at most the window length), or
        `None` for the last value.

    **Returns:**

    The forecasts, shape `(N, h C)` like `y`.
    """
    x = np.asarray(split.x, dtype=np.float64)
    n, length, channels = x.shape
    width = np.asarray(split.y).shape[-1]
    if np.asarray(split.y).ndim != 2 or width % channels:
        raise ValueError(
            f"Forecast targets must have shape (N, h * C) with C = {channels} "
            f"channels; got {np.asarray(split.y).shape}."
        )
    horizon = width // channels
    mask = getattr(split, "mask", None)
    lengths = (
        np.full(n, length) if mask is None else np.asarray(mask).sum(axis=1)
    ).astype(np.int64)
    last = lengths - 1
    if season is None:
        back = np.zeros(horizon, np.int64)
    else:
        _checks.check_integer("season", season)
        if season > lengths.min():
            raise ValueError(
                f"The seasonal naive forecast looks back one season ({season} "
                f"steps), but the windows have only {int(lengths.min())} steps: use "
                "a window at least one season long."
            )
        j = np.arange(1, horizon + 1)
        back = season * np.ceil(j / season).astype(np.int64) - j
    rows = np.arange(n)[:, None]
    steps = last[:, None] - back[None, :]  # (N, h)
    return x[rows, steps].reshape(n, horizon * channels)


def naive_forecast(test, *, season: int | None = None, val=None) -> dict[str, Any]:
    """Score the naive forecast ([`naive_forecasts`][lrc_toolkit.baselines.naive_forecasts]:
    the last value, or with `season` the seasonal naive) by MSE and MAE.

    **Arguments:**

    - `test`: forecasting windows (see `naive_forecasts`).
    - `season`: the season length, or `None` for the last value.
    - `val`: optionally the validation windows, scored too.

    **Returns:**

    `{"test_mse", "test_mae", "val_mse", "val_mae" (`None` without `val`)}`, in
    the units of the windows (the training standard deviation, for normalised
    windows).
    """

    def score(split):
        return _errors(naive_forecasts(split, season=season), split.y)

    return _scored(score, test, val)
