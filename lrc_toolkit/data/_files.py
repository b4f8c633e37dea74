import os
from typing import Literal

import numpy as np

from ._dataset import UEADataset
from ._forecast import forecast_windows
from ._protocol import load_arrays


_KEYS = ("x", "y", "mask", "times")


def load_file(
    path: str | os.PathLike,
    *,
    task: Literal["classification", "regression", "forecast"] = "classification",
    horizon: int | None = None,
    window: int | None = None,
    **kwargs,
) -> UEADataset:
    """Load your own data set from a NumPy `.npz` file and apply the paper's protocol
    ([`load_arrays`][lrc_toolkit.data.load_arrays]) to it, or cut it into
    forecasting windows ([`forecast_windows`][lrc_toolkit.data.forecast_windows]).

    The file holds arrays (no pickled objects: it is read with
    `allow_pickle=False`):

    - `x`: the series, shape `(N, T, C)` (float); for `task="forecast"` also one
        series of shape `(T, C)` or `(T,)`;
    - `y`: one label per series, shape `(N,)` (integers or strings for
        classification); for `task="regression"` float targets of shape `(N,)` or
        `(N, K)` (one per series) or `(N, T, K)` (one per step); not needed (and
        ignored) for `task="forecast"`;
    - `mask` (optional): shape `(N, T)`, `True` on real steps; the real steps of each
        series come first (variable lengths, padded at the end); per-step targets
        are cut to the same steps;
    - `times` (optional): the time stamps of the samples, shape `(N, T)` or `(T,)`,
        strictly increasing over the real steps (irregular sampling; not for
        forecasting).

    **Arguments:**

    - `path`: the `.npz` file.
    - `task`: `"classification"`, `"regression"` (both through `load_arrays`) or
        `"forecast"` (through `forecast_windows`, with `horizon` and `window`).
    - `horizon`, `window`: the forecast's horizon and input window (only for
        `task="forecast"`; `horizon` is required there).
    - `**kwargs`: passed to `load_arrays` (`seed`, `drop_rate`, `normalise`, ...)
        or, for forecasting, to `forecast_windows` (`fractions`, `normalise`,
        `relative`);
        `name` defaults to the file's stem.

    **Returns:**

    A [`UEADataset`][lrc_toolkit.data.UEADataset].
    """
    path = os.fspath(path)
    kwargs.setdefault("name", os.path.splitext(os.path.basename(path))[0])
    if task == "forecast":
        return _load_forecast(path, horizon, window, kwargs)
    if horizon is not None or window is not None:
        raise ValueError("`horizon` and `window` are for `task='forecast'` only.")
    kwargs["task"] = task
    arrays = _read(
        path,
        ("x", "y"),
        " Expected `x` (N, T, C), `y` (N,), and optionally `mask` (N, T) and `times`.",
    )
    x, y = arrays["x"], arrays["y"]
    if x.ndim != 3:
        raise ValueError(
            f"`x` in {path!r} must have shape (N, T, C) = (series, steps, channels); "
            f"got shape {x.shape}. A single channel needs a trailing axis: x[..., None]."
        )
    times = arrays.get("times")
    mask = arrays.get("mask")
    if mask is not None:
        lengths = _lengths(mask, x, path)
        x = [x[i, : lengths[i]] for i in range(x.shape[0])]
        if times is not None and times.ndim == 2:
            times = [times[i, : lengths[i]] for i in range(times.shape[0])]
        if y.ndim == 3:  # per-step targets: the real steps of each series
            if y.shape[:2] != mask.shape:
                raise ValueError(
                    f"The per-step targets `y` in {path!r} have shape {y.shape}; with "
                    f"`x` of shape {arrays['x'].shape} they must have shape "
                    f"{mask.shape + (y.shape[-1],)} (one target row per step)."
                )
            y = [y[i, : lengths[i]] for i in range(y.shape[0])]
    return load_arrays(x, y, times=times, **kwargs)


def _lengths(mask: np.ndarray, x: np.ndarray, path: str) -> np.ndarray:
    """The number of real steps of each series, from a mask of real steps first."""
    if mask.shape != x.shape[:2] or mask.dtype != np.bool_:
        raise ValueError(
            f"`mask` in {path!r} must be boolean of shape {x.shape[:2]}, got "
            f"{mask.dtype} of shape {mask.shape}."
        )
    lengths = mask.sum(axis=1)
    packed = np.arange(x.shape[1])[None, :] < lengths[:, None]
    if not np.array_equal(mask, packed):
        bad = np.flatnonzero(np.any(mask != packed, axis=1))
        raise ValueError(
            f"`mask` in {path!r} has padding before real steps in {bad.size} "
            f"series (e.g. index {bad[0]}); put each series' real steps first."
        )
    return lengths


def _read(path: str, required: tuple[str, ...], expected: str = "") -> dict:
    """The arrays of a `.npz` file that holds every name of `required` and no name
    outside `_KEYS` (`expected` is added to the message of a missing one)."""
    if not path.endswith(".npz"):
        raise ValueError(
            f"{path!r} is not a .npz file. Save your arrays with "
            "`numpy.savez(path, x=x, y=y)` (optionally `mask=`, `times=`)."
        )
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such data file: {path!r}.")
    with np.load(path, allow_pickle=False) as f:
        unknown = sorted(set(f.files) - set(_KEYS))
        missing = [k for k in required if k not in f.files]
        if missing:
            raise ValueError(
                f"{path!r} has no {' or '.join(repr(k) for k in missing)} array; it "
                f"holds {sorted(f.files)}.{expected}"
            )
        if unknown:
            raise ValueError(
                f"{path!r} holds unknown arrays {unknown}; expected only {list(_KEYS)}."
            )
        return {k: f[k] for k in f.files}


def _load_forecast(path: str, horizon, window, kwargs) -> UEADataset:
    if horizon is None:
        raise ValueError("`task='forecast'` needs a `horizon` (steps to forecast).")
    arrays = _read(path, ("x",))
    if "times" in arrays:
        raise ValueError(
            f"{path!r} holds time stamps; forecasting windows are made from "
            "regularly sampled series only. Drop `times` (or resample the series)."
        )
    x, mask = arrays["x"], arrays.get("mask")
    if x.ndim not in (1, 2, 3):
        raise ValueError(
            f"`x` in {path!r} must have shape (T,), (T, C) or (N, T, C) for "
            f"forecasting; got {x.shape}."
        )
    if mask is not None:
        if x.ndim != 3:
            raise ValueError(
                f"`mask` in {path!r} is for several series, `x` of shape (N, T, C); "
                f"`x` has shape {x.shape}."
            )
        lengths = _lengths(mask, x, path)
        x = [x[i, : lengths[i]] for i in range(x.shape[0])]
    return forecast_windows(x, horizon, window, **kwargs)
