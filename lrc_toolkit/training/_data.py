"""Checks of the data splits (before anything is compiled or trained), and batches."""

import dataclasses
from typing import Any

import jax.numpy as jnp
import numpy as np

from ..distributed import shard_batch


@dataclasses.dataclass(frozen=True)
class Arrays:
    """One checked split as numpy arrays; `times` is `None` without time stamps."""

    x: np.ndarray
    mask: np.ndarray
    y: np.ndarray
    times: np.ndarray | None

    def __len__(self) -> int:
        return self.x.shape[0]

    def take(self, idx: np.ndarray) -> tuple:
        times = None if self.times is None else self.times[idx]
        return self.x[idx], self.mask[idx], self.y[idx], times


def _check_x_mask(model, data: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    for attr in ("x", "y"):
        if not hasattr(data, attr):
            raise TypeError(
                f"`{name}` must have attributes `x` (N, T, P), `y` and optionally "
                f"`mask` (N, T) (e.g. a `lrc_toolkit.data` Split); it has no `{attr}`."
            )
    x = np.asarray(data.x)
    P = getattr(model, "input_size", None)
    if x.ndim != 3 or (isinstance(P, int) and x.shape[2] != P):
        raise ValueError(
            f"`{name}.x` must have shape (N, T, {P or 'P'}) = (sequences, time "
            f"steps, channels) to match the model's input_size={P}; got {x.shape}."
        )
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"`{name}.x` must be a floating array, got dtype {x.dtype}.")
    N, T = x.shape[:2]
    if N == 0 or T == 0:
        raise ValueError(f"`{name}` is empty (x has shape {x.shape}).")
    mask = getattr(data, "mask", None)
    mask = np.ones((N, T), bool) if mask is None else np.asarray(mask)
    if mask.shape != (N, T) or mask.dtype != np.bool_:
        raise ValueError(
            f"`{name}.mask` must be a boolean array of shape {(N, T)}, got "
            f"{mask.dtype} of shape {mask.shape}."
        )
    lengths = mask.sum(axis=1)
    if np.any(lengths == 0):
        bad = np.flatnonzero(lengths == 0)[:5].tolist()
        raise ValueError(f"`{name}` has sequences with no valid step (rows {bad}).")
    if np.any(mask != (np.arange(T)[None, :] < lengths[:, None])):
        raise ValueError(
            f"`{name}.mask` must be True on a prefix of each sequence (padding at the "
            "end only): a causal recurrence guarantees only that trailing padding "
            "does not influence the prediction."
        )
    bad = ~np.isfinite(x) & mask[:, :, None]
    if np.any(bad):
        rows = np.unique(np.nonzero(bad)[0])
        raise ValueError(
            f"`{name}.x` contains {int(bad.sum())} NaN or infinite values on valid "
            f"steps (in {rows.size} sequences, e.g. rows {rows[:5].tolist()}). Impute "
            "or drop them before training."
        )
    return x, mask


def _check_y(model, y: np.ndarray, mask: np.ndarray, name: str) -> np.ndarray:
    N, T = mask.shape
    task = getattr(model, "task", None)
    if task == "classification":
        O = model.num_outputs
        if y.shape != (N,) or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(
                f"`{name}.y` must hold one integer class label per sequence, shape "
                f"({N},); got {y.dtype} of shape {y.shape}."
            )
        if y.min() < 0 or y.max() >= O:
            raise ValueError(
                f"`{name}.y` has labels in [{int(y.min())}, {int(y.max())}], but the "
                f"model has num_outputs={O} classes (labels must lie in [0, {O - 1}])."
                " Build the model with `num_outputs=dataset.num_classes`."
            )
        return y.astype(np.int32)
    if task == "regression":
        O = model.num_outputs
        if y.ndim == 1 and O == 1:
            y = y[:, None]
        if y.shape not in ((N, O), (N, T, O)) or not np.issubdtype(
            y.dtype, np.floating
        ):
            raise ValueError(
                f"`{name}.y` must hold float targets of shape ({N}, {O}) (one per "
                f"sequence) or ({N}, {T}, {O}) (one per step) for a regression model "
                f"with num_outputs={O}; got {y.dtype} of shape {y.shape}."
            )
        readout = getattr(model, "readout", "per_step")
        if y.ndim == 3 and readout != "per_step":
            raise ValueError(
                f"`{name}.y` has one target per step, shape {y.shape}, but the model's "
                f"readout={readout!r} gives one output per sequence: build it with "
                "`readout='per_step'`."
            )
    elif y.ndim == 0 or y.shape[0] != N:
        raise ValueError(
            f"`{name}.y` must have one target per sequence along its first axis "
            f"({N}); got shape {y.shape}."
        )
    if np.issubdtype(y.dtype, np.floating):
        per_step = y.ndim == 3 and y.shape[:2] == (N, T)
        valid = mask[:, :, None] if per_step else True
        if not np.all(np.isfinite(y) | ~valid):
            raise ValueError(f"`{name}.y` contains NaN or infinite targets.")
    return y


def _check_times(data: Any, mask: np.ndarray, dtype, name: str) -> np.ndarray | None:
    times = getattr(data, "times", None)
    if times is None:
        return None
    times = np.asarray(times)
    if times.shape != mask.shape or not np.issubdtype(times.dtype, np.floating):
        raise ValueError(
            f"`{name}.times` must be a float array of shape {mask.shape} (one time "
            f"stamp per step), got {times.dtype} of shape {times.shape}."
        )
    if not np.all(np.isfinite(times) | ~mask):
        raise ValueError(f"`{name}.times` has NaN or infinite time stamps.")
    return times.astype(dtype)


def check_split(model, data: Any, name: str) -> Arrays:
    """Check a split (any object with `x` (N, T, P), `y`, and optionally `mask`
    (N, T) and `times` (N, T)) against the model, and return it as numpy arrays
    (`times` in the dtype of `x`).

    Checks against the model's `input_size`, `task` and `num_outputs` are made
    when the model has those attributes (as [`LrcSSM`][lrc_toolkit.models.LrcSSM]
    does). Raises `ValueError`/`TypeError` naming the split and the fix.
    """
    x, mask = _check_x_mask(model, data, name)
    y = _check_y(model, np.asarray(data.y), mask, name)
    return Arrays(x, mask, y, _check_times(data, mask, x.dtype, name))


def batches(n: int, batch_size: int, order: np.ndarray):
    """Index batches of a fixed size; the last one is filled up with weight-0
    repeats so that every batch has the same shape (one compilation)."""
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        weight = np.ones(batch_size, np.float32)
        if idx.size < batch_size:
            weight[idx.size :] = 0
            idx = np.concatenate([idx, np.resize(order, batch_size - idx.size)])
        yield idx, weight


def to_devices(mesh, arrays: tuple) -> tuple:
    """A batch as device arrays: split over `mesh` (data parallel), or on the
    default device. `None` entries (no time stamps) stay `None`."""
    present = [a for a in arrays if a is not None]
    moved = (
        [jnp.asarray(a) for a in present]
        if mesh is None
        else list(shard_batch(tuple(present), mesh))
    )
    return tuple(None if a is None else moved.pop(0) for a in arrays)


def round_to_mesh(batch_size: int, mesh) -> int:
    """Round a batch size up to a multiple of the mesh's devices (the extra rows are
    weight-0 fillers, see `batches`)."""
    return batch_size if mesh is None else -(-batch_size // mesh.size) * mesh.size
