import os

import numpy as np

from ._dataset import UEADataset
from ._protocol import load_arrays


_KEYS = ("x", "y", "mask", "times")


def load_file(path: str | os.PathLike, **kwargs) -> UEADataset:
    """Load your own data set from a NumPy `.npz` file and apply the paper's protocol
    ([`load_arrays`][lrc_toolkit.data.load_arrays]) to it.

    The file holds arrays (no pickled objects: it is read with
    `allow_pickle=False`):

    - `x`: the series, shape `(N, T, C)` (float);
    - `y`: one label per series, shape `(N,)` (integers or strings for
        classification, floats for `task="regression"`);
    - `mask` (optional): shape `(N, T)`, `True` on real steps; the real steps of each
        series come first (variable lengths, padded at the end);
    - `times` (optional): the time stamps of the samples, shape `(N, T)` or `(T,)`,
        strictly increasing over the real steps (irregular sampling).

    **Arguments:**

    - `path`: the `.npz` file.
    - `**kwargs`: passed to `load_arrays` (`seed`, `drop_rate`, `normalise`, ...);
        `name` defaults to the file's stem.

    **Returns:**

    A [`UEADataset`][lrc_toolkit.data.UEADataset].
    """
    path = os.fspath(path)
    if not path.endswith(".npz"):
        raise ValueError(
            f"{path!r} is not a .npz file. Save your arrays with "
            "`numpy.savez(path, x=x, y=y)` (optionally `mask=`, `times=`)."
        )
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such data file: {path!r}.")
    with np.load(path, allow_pickle=False) as f:
        unknown = sorted(set(f.files) - set(_KEYS))
        missing = [k for k in ("x", "y") if k not in f.files]
        if missing:
            raise ValueError(
                f"{path!r} has no {' or '.join(repr(k) for k in missing)} array; it "
                f"holds {sorted(f.files)}. Expected `x` (N, T, C), `y` (N,), and "
                "optionally `mask` (N, T) and `times`."
            )
        if unknown:
            raise ValueError(
                f"{path!r} holds unknown arrays {unknown}; expected only {list(_KEYS)}."
            )
        arrays = {k: f[k] for k in f.files}
    x, y = arrays["x"], arrays["y"]
    if x.ndim != 3:
        raise ValueError(
            f"`x` in {path!r} must have shape (N, T, C) = (series, steps, channels); "
            f"got shape {x.shape}. A single channel needs a trailing axis: x[..., None]."
        )
    times = arrays.get("times")
    mask = arrays.get("mask")
    if mask is not None:
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
        x = [x[i, : lengths[i]] for i in range(x.shape[0])]
        if times is not None and times.ndim == 2:
            times = [times[i, : lengths[i]] for i in range(times.shape[0])]
    kwargs.setdefault("name", os.path.splitext(os.path.basename(path))[0])
    return load_arrays(x, y, times=times, **kwargs)
