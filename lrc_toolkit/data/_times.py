"""Time stamps of irregularly sampled series: validation, the random drop of the
neural-CDE protocol, padding, and the per-step Δt the models consume."""

import math
import numbers
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Real

from .._checks import check_positive


DEFAULT_DROP_SEED = 56789
"""The seed of the random drop when none is given: the fixed generator seed of the
neural-CDE UEA experiments (Kidger et al. 2020)."""


def time_steps(
    times: Real[np.ndarray, "*batch T"] | Real[Array, "*batch T"],
    mask: Bool[np.ndarray, "*batch T"] | Bool[Array, "*batch T"] | None = None,
    *,
    first: float | int | None = None,
) -> Float[np.ndarray, "*batch T"] | Float[Array, "*batch T"]:
    """The step sizes $\\Delta t_k = t_k - t_{k-1}$ of time-stamped series, one per
    step, as the liquid layers consume them ($x_k = x_{k-1} + \\Delta t_k\\,
    f(x_{k-1}, u_k)$ for the Euler discretisation).

    With steps numbered $k = 1, \\dots, T$:

    - **Real steps** $k \\ge 2$: $\\Delta t_k = t_k - t_{k-1}$.
    - **First step**: there is no $t_0$. By default $t_0 = t_1 - (t_2 - t_1)$, i.e.
        $\\Delta t_1 = \\Delta t_2$ (the first step is as long as the second); for a
        series with a single real step, $\\Delta t_1 = 1$. Pass `first` to use that
        value as $\\Delta t_1$ for every series instead.
    - **Padded steps** (where `mask` is False; padding comes after the real steps):
        $\\Delta t$ of the last real step, whatever the time stamps stored there.
        They are masked out of the model's output, but stay finite and positive so
        that the recurrence over them stays well-behaved.

    Uniform stamps $t_k = t_1 + (k - 1) h$ give $\\Delta t_k = h$ for every step,
    so stamps $0, 1, \\dots, T - 1$ give the paper's $\\Delta t = 1$. With
    the padding of [`load_arrays`][lrc_toolkit.data.load_arrays] (padded stamps
    continue the last step) the result does not depend on whether `mask` is given.

    Works on NumPy arrays (returns NumPy, float64 for integer stamps, and checks
    the values) and on JAX arrays, also inside `jax.jit` (returns JAX; no value
    checks there).

    **Arguments:**

    - `times`: the time stamps, shape `(..., T)`: e.g. `split.times` of shape
        `(N, T)`, or one series' `(T,)`.
    - `mask`: `True` on the real steps, same shape as `times`; the real steps must
        be a prefix of each series. `None`: every step is real.
    - `first`: the first step's $\\Delta t_1$ for every series; `None` for the
        default rule above.

    **Returns:**

    $\\Delta t$, the same shape as `times`; positive wherever `times` is strictly
    increasing over the real steps.

    **Raises:**

    `ValueError` (NumPy inputs only) when the shapes differ, the mask is not a
    prefix, or the stamps are not finite and strictly increasing over the real
    steps.
    """
    if first is not None:
        check_positive("first", first, or_none=True)
    on_device = isinstance(times, jax.Array) or isinstance(mask, jax.Array)
    xp = jnp if on_device else np
    if on_device:
        times = jnp.asarray(times)
        if not jnp.issubdtype(times.dtype, jnp.floating):
            times = times.astype(jnp.result_type(float))
        mask = None if mask is None else jnp.asarray(mask)
    else:
        times = np.asarray(times)
        if not np.issubdtype(times.dtype, np.floating):
            times = times.astype(np.float64)
        mask = None if mask is None else np.asarray(mask)
    if times.ndim == 0:
        raise ValueError("`times` must have a time axis: shape (..., T).")
    if mask is not None and tuple(mask.shape) != tuple(times.shape):
        raise ValueError(
            f"`mask` must have the shape of `times`, {tuple(times.shape)}; got "
            f"{tuple(mask.shape)}."
        )
    if not on_device:
        _check_steps(times, mask)

    num_steps = times.shape[-1]
    diffs = xp.diff(times, axis=-1)
    lengths = (
        xp.full(times.shape[:-1], num_steps) if mask is None else mask.sum(axis=-1)
    )
    if first is not None:
        first_step = xp.full(times.shape[:-1] + (1,), first, dtype=times.dtype)
    elif num_steps >= 2:
        first_step = xp.where(lengths[..., None] >= 2, diffs[..., :1], 1.0)
    else:
        first_step = xp.ones(times.shape[:-1] + (1,), dtype=times.dtype)
    steps = xp.concatenate([first_step.astype(times.dtype), diffs], axis=-1)
    if mask is not None:
        last = xp.clip(lengths - 1, 0, num_steps - 1)[..., None]
        last_step = xp.take_along_axis(steps, last, axis=-1)
        steps = xp.where(mask, steps, last_step)
    return steps


def _check_steps(times: np.ndarray, mask: np.ndarray | None) -> None:
    """Value checks of `time_steps` for NumPy inputs."""
    if mask is None:
        mask = np.ones(times.shape, bool)
    mask = np.asarray(mask)
    if mask.dtype != np.bool_:
        raise ValueError(f"`mask` must be boolean, got dtype {mask.dtype}.")
    lengths = mask.sum(axis=-1)
    if np.any(mask != (np.arange(times.shape[-1]) < lengths[..., None])):
        raise ValueError(
            "`mask` must be True on a prefix of each series (padding at the end "
            "only); left-pack the real steps first."
        )
    if not np.isfinite(times[mask]).all():
        raise ValueError(
            "`times` contains NaN or infinite values on real steps; drop those "
            "samples or give them finite time stamps."
        )
    real_pairs = mask[..., 1:]
    if np.any(np.diff(times, axis=-1)[real_pairs] <= 0):
        raise ValueError(
            "`times` must be strictly increasing over the real steps of each series "
            "(found a step with t_k <= t_(k-1)); sort each series by time and merge "
            "or drop samples with repeated time stamps."
        )


# ------------------------------------------------------------------ load_arrays side


def _as_times_list(
    times, series: list[np.ndarray], from_array: bool, name: str
) -> list[np.ndarray]:
    """Validate the `times` argument of `load_arrays` against the series, and return
    one float64 `(T_i,)` array per series."""
    lengths = [s.shape[0] for s in series]
    n, t_max = len(series), max(lengths)
    how = (
        f"`times` must have the shape of the data's time axis: ({n}, {t_max}) "
        f"(one row per series) or ({t_max},) (shared by all series)"
        if from_array or len(set(lengths)) == 1
        else f"`times` must be a sequence of {n} arrays of shapes (T_i,), one per "
        f"series, or one ({t_max},) array shared by all series (a shorter series "
        "uses its first T_i stamps)"
    )
    if isinstance(times, np.ndarray) and times.dtype != object:
        if times.ndim == 1 and times.shape[0] == t_max:
            items = [times[:length] for length in lengths]
        elif times.ndim == 2 and times.shape == (n, t_max) and len(set(lengths)) == 1:
            items = list(times)
        else:
            raise ValueError(f"{name}: {how}; got an array of shape {times.shape}.")
    elif isinstance(times, (str, bytes)) or not isinstance(
        times, (Sequence, np.ndarray)
    ):
        raise TypeError(f"{name}: {how}; got {type(times).__name__}.")
    else:
        items = list(times)
        if len(items) != n:
            raise ValueError(f"{name}: {how}; got {len(items)} entries.")
    out = []
    for i, item in enumerate(items):
        arr = np.asarray(item)
        if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
            raise TypeError(
                f"{name}: the time stamps of series {i} have dtype {arr.dtype}; "
                "time stamps must be real numbers."
            )
        if np.iscomplexobj(arr):
            raise TypeError(f"{name}: the time stamps of series {i} are complex.")
        if arr.shape != (lengths[i],):
            raise ValueError(
                f"{name}: series {i} has {lengths[i]} steps but its time stamps have "
                f"shape {arr.shape}; {how}."
            )
        out.append(arr.astype(np.float64))
    _check_increasing(out, name)
    return out


def _check_increasing(times: list[np.ndarray], name: str) -> None:
    def report(bad, what, fix):
        shown = ", ".join(str(i) for i in bad[:10]) + (", ..." if len(bad) > 10 else "")
        raise ValueError(
            f"{name}: the time stamps of {len(bad)} of {len(times)} series {what} "
            f"(case indices {shown}); {fix}"
        )

    bad = [i for i, t in enumerate(times) if not np.isfinite(t).all()]
    if bad:
        report(
            bad,
            "contain NaN or infinite values",
            "drop those samples or give them finite time stamps.",
        )
    bad = [i for i, t in enumerate(times) if np.any(np.diff(t) <= 0)]
    if bad:
        report(
            bad,
            "are not strictly increasing",
            "sort each series by time, and merge or drop samples with repeated "
            "time stamps.",
        )


def _check_drop_rate(drop_rate) -> float:
    if isinstance(drop_rate, bool) or not isinstance(drop_rate, numbers.Real):
        raise TypeError(
            f"`drop_rate` must be a number in [0, 1), got {type(drop_rate).__name__}."
        )
    if not (0.0 <= drop_rate < 1.0):
        raise ValueError(
            f"`drop_rate` must lie in [0, 1) (the fraction of each series' samples "
            f"to drop, e.g. 0.3, 0.5 or 0.7), got {drop_rate!r}."
        )
    return float(drop_rate)


def _num_dropped(length: int, drop_rate: float) -> int:
    # The tiny tolerance makes e.g. 0.29 * 100 (= 28.999999999999996) floor to 29.
    return min(math.floor(drop_rate * length + 1e-9), length - 1)


def _kept_positions(
    length: int, drop_rate: float, drop_seed: int, case: int
) -> np.ndarray:
    """The positions of the samples of case `case` (its index in the collection)
    that survive the drop, in increasing order."""
    if drop_rate == 0.0:
        return np.arange(length)
    rng = np.random.default_rng((drop_seed, case))
    removed = rng.permutation(length)[: _num_dropped(length, drop_rate)]
    return np.setdiff1d(np.arange(length), removed)


def _pad_times(times: np.ndarray, max_length: int) -> np.ndarray:
    """Pad one series' stamps to `max_length` by continuing its last step (1 for a
    single-step series), so that every Δt stays positive."""
    length = times.shape[0]
    step = times[-1] - times[-2] if length >= 2 else 1.0
    padded = np.empty((max_length,), np.float64)
    padded[:length] = times
    padded[length:] = times[-1] + step * np.arange(1, max_length - length + 1)
    return padded
