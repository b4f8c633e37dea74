import hashlib
import math
import numbers
import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np

from ._dataset import Split, UEADataset
from ._times import (
    _as_times_list,
    _check_drop_rate,
    _kept_positions,
    _pad_times,
    DEFAULT_DROP_SEED,
)


DEFAULT_SEED = 2345
DEFAULT_FRACTIONS = (0.7, 0.15, 0.15)


def load_arrays(
    x: np.ndarray | Sequence[np.ndarray],
    y: np.ndarray | Sequence,
    *,
    seed: int | np.integer = DEFAULT_SEED,
    name: str = "custom",
    classes: Sequence | None = None,
    task: Literal["classification", "regression"] = "classification",
    time_channel: bool = False,
    normalise: bool = True,
    fractions: Sequence[float | int] = DEFAULT_FRACTIONS,
    deduplicate: bool = True,
    times: np.ndarray | Sequence[np.ndarray] | None = None,
    drop_rate: float | int = 0.0,
    drop_seed: int | np.integer = DEFAULT_DROP_SEED,
) -> UEADataset:
    """Apply the paper's data protocol to your own series.

    This is what [`load_uea`][lrc_toolkit.data.load_uea] does after reading the
    archive's files:

    1. **Validate**: every series is a finite `(T_i, P)` array with the same `P`;
        there is one label per series (see `classes` and `task`). A series with NaN
        or infinite values raises a `ValueError` that says how many cases are
        affected: impute or drop them first. Time stamps, if given, are finite and
        strictly increasing within each series.
    2. **Deduplicate** (`deduplicate=True`): two cases are duplicates when their
        series are identical (same length, bitwise-equal values, and equal time
        stamps if `times` is given), *whatever their labels*; the first occurrence
        is kept, with its label. Dropping copies whose label differs from the kept
        one warns (the data set then contradicts itself). This is the rule of the
        Log-NCDE preprocessing the paper follows (which keeps the first occurrence
        of each distinct series), and gives the paper's case counts (e.g.
        EigenWorms: 259 → 236).
    3. **Drop samples** (`drop_rate > 0`, the irregular-sampling protocol of the
        neural-CDE papers, Kidger et al. 2020: 30, 50 or 70 % dropped): from each
        kept case $i$ of length $T_i$ (its index $i$ in the collection, as in
        `Split.indices`), $\\lfloor r\\,T_i \\rfloor$ samples are dropped
        ($r$ = `drop_rate`; at least one sample is always kept): the first that
        many entries of `np.random.default_rng((drop_seed, i)).permutation(T_i)`.
        The remaining samples keep their order and their time stamps and are
        packed to the front (the padding follows them). As in the neural-CDE
        code, the drop is made once on the whole collection, before the split,
        with a generator independent of the split `seed` (default: that code's
        seed, 56789), so every split seed sees the same dropped data. Two
        deliberate differences: the number dropped counts each series' own length
        (the neural-CDE code counts the padded length, which is the same for
        equal-length data sets), and duplicates are removed before the drop (a
        drop would make copies look distinct).
    4. **Permute and split**: with `M` cases left, in their original order,
        `perm = np.random.default_rng(seed).permutation(M)`; with the cumulative
        fractions $c_1 = f_1$, $c_2 = f_1 + f_2$, the first
        $n_1 = \\lfloor c_1 M \\rfloor$ cases of `perm` are the training split, the
        next $\\lfloor c_2 M \\rfloor - n_1$ the validation split and the rest the
        test split (70/15/15 gives the paper's sizes, e.g. 409 cases → 286/61/62).
    5. **Normalise** (`normalise=True`): each channel is shifted and scaled by the
        mean and (population) standard deviation of the training split, computed over
        the real (kept) steps of all training series only (padding excluded); a
        channel that is constant on the training split is only shifted. Validation
        and test data never enter the statistics. Time stamps are not normalised.
    6. **Time channel** (`time_channel=True`): a channel
        $(t - t_{\\min}) / (t_{\\max} - t_{\\min})$ of each sample's time stamp is
        prepended as channel 0, where $t_{\\min}$, $t_{\\max}$ are the earliest and
        latest stamps of the data set before any drop (1 instead of a zero range).
        Without `times` the stamps are $k = 0, \\dots, T_i - 1$, which gives
        $k / (T - 1)$ with $T$ the longest series of the data set: every series is
        sampled at the same rate, so equal length series get `linspace(0, 1, T)` and
        shorter ones stop early. It is not normalised. No time channel in the data
        is ever assumed.
    7. **Pad**: every series is zero-padded at the end to $T$, the longest (kept)
        series; `mask` and `lengths` mark the real steps. Time stamps continue the
        last real step over the padding (see [`Split`][lrc_toolkit.data.Split]).

    **Time stamps in the splits.** `Split.times` is `None` when neither `times` nor
    a drop is given (regular unit steps: use the model's `dt`). With a drop but no
    `times`, the stamps are the samples' original positions $0, \\dots, T_i - 1$.
    `time_steps(split.times, split.mask)` gives the per-step $\\Delta t$.

    **Arguments:**

    - `x`: an array of shape `(N, T, P)`, or a sequence of `N` arrays of shapes
        `(T_i, P)` (variable lengths allowed).
    - `y`: `N` labels. For classification, any hashable labels (strings, integers),
        mapped to the integers `0 .. len(classes) - 1` in the order of `classes`
        (`UEADataset.classes` holds the mapping). For regression, float targets:
        one per series, shape `(N,)` or `(N, K)`; or one per step, shape
        `(N, T, K)` (with `x` of shape `(N, T, P)`) or a sequence of `N` arrays of
        shapes `(T_i, K)`, each as long as its series. Per-step targets follow
        their series through the drop, the permutation and the padding (padded
        steps get zero targets; `mask` marks the real ones). NaN or infinite
        targets, and per-step targets of another length than their series, raise
        a `ValueError`. Targets are not normalised (`lrc-toolkit train --task
        regress` standardises them with the training split's statistics).
    - `seed`: the seed of the permutation (the paper uses
        [`PAPER_SEEDS`][lrc_toolkit.data.PAPER_SEEDS]).
    - `name`: a name for the data set, used in error messages.
    - `classes`: the class labels in the order of the integer labels to produce;
        every label of `y` must be one of them (compared as strings). If `None`, the
        sorted distinct labels of `y`.
    - `task`: `"classification"` (integer labels) or `"regression"` (float targets,
        no classes).
    - `time_channel`, `normalise`: see above.
    - `fractions`: the train / validation / test fractions, three non-negative
        numbers that sum to 1.
    - `deduplicate`: whether to drop duplicate cases (step 2).
    - `times`: the time stamps of the samples, strictly increasing within each
        series: an array of shape `(N, T)` (for equal lengths) or `(T,)` (one clock
        shared by all series; a shorter series uses its first `T_i` stamps), or a
        sequence of `N` arrays of shapes `(T_i,)`. `None`: unit steps.
    - `drop_rate`: the fraction of each series' samples to drop at random, in
        `[0, 1)` (step 3).
    - `drop_seed`: the seed of the drop (step 3).

    **Returns:**

    A [`UEADataset`][lrc_toolkit.data.UEADataset].
    """
    if not isinstance(name, str):
        raise TypeError(f"`name` must be a string, got {type(name).__name__}.")
    if task not in ("classification", "regression"):
        raise ValueError(
            f"`task` must be 'classification' or 'regression', got {task!r}."
        )
    _check_seed(seed)
    _check_seed(drop_seed, "drop_seed")
    drop_rate = _check_drop_rate(drop_rate)
    fractions = _check_fractions(fractions)
    series = _as_series_list(x, name)
    _check_finite(series, name)
    stamps = (
        None if times is None else _as_times_list(times, series, _is_array(x), name)
    )
    if task == "classification":
        labels, classes = _encode_labels(y, len(series), classes, name)
    else:
        if classes is not None:
            raise ValueError("`classes` is for classification; drop it for regression.")
        labels, classes = _regression_targets(y, series, name), ()

    if deduplicate:
        keep = _first_occurrences(series, labels, name, stamps)
    else:
        keep = np.arange(len(series))
    num_duplicates = len(series) - len(keep)
    if stamps is None:
        stamps = [np.arange(s.shape[0], dtype=np.float64) for s in series]
    scale = _time_scale([stamps[i] for i in keep])
    cases = {
        int(i): _drop(series[i], stamps[i], drop_rate, int(drop_seed), int(i))
        for i in keep
    }
    if isinstance(labels, list):  # per-step targets follow their series' drop
        labels = {int(i): labels[i][cases[int(i)][2]] for i in keep}
    parts = _split_positions(len(keep), seed, fractions, name, num_duplicates)
    part_indices = [keep[p] for p in parts]

    max_length = max(s.shape[0] for s, _, _ in cases.values())
    if normalise:
        mean, std = _channel_statistics([cases[i][0] for i in part_indices[0]])
    else:
        mean = std = None
    with_times = times is not None or drop_rate > 0
    train, val, test = (
        _build_split(
            cases, labels, idx, max_length, mean, std, time_channel, scale, with_times
        )
        for idx in part_indices
    )
    return UEADataset(
        name=name,
        classes=classes,
        train=train,
        val=val,
        test=test,
        seed=int(seed),
        time_channel=bool(time_channel),
        mean=None if mean is None else mean.astype(np.float32),
        std=None if std is None else std.astype(np.float32),
        num_duplicates=num_duplicates,
        drop_rate=drop_rate,
        drop_seed=int(drop_seed),
    )


def split_sizes(
    num_cases: int | np.integer, fractions: Sequence[float | int] = DEFAULT_FRACTIONS
) -> tuple[int, int, int]:
    """The train / validation / test sizes the protocol gives for `num_cases` cases.

    **Arguments:**

    - `num_cases`: the number of cases after deduplication.
    - `fractions`: the train / validation / test fractions (summing to 1).

    **Returns:**

    `(n_train, n_val, n_test)`: $n_1 = \\lfloor f_1 M \\rfloor$,
    $n_2 = \\lfloor (f_1 + f_2) M \\rfloor - n_1$, $n_3 = M - n_1 - n_2$.
    """
    fractions = _check_fractions(fractions)
    # A tiny tolerance so that e.g. 0.7 * 100 (= 70.00000000000001 or 69.999...)
    # floors to 70 whatever the rounding of the fractions.
    b1 = math.floor(fractions[0] * num_cases + 1e-9)
    b2 = math.floor((fractions[0] + fractions[1]) * num_cases + 1e-9)
    b2 = min(max(b2, b1), num_cases)
    return b1, b2 - b1, num_cases - b2


# ---------------------------------------------------------------------------- checks


def _check_seed(seed, what: str = "seed") -> None:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise TypeError(f"`{what}` must be a non-negative integer, got {seed!r}.")


def _check_fractions(fractions) -> tuple[float, float, float]:
    try:
        fractions = tuple(float(f) for f in fractions)
    except (TypeError, ValueError):
        raise TypeError(
            "`fractions` must be three numbers (train, validation, test), e.g. "
            f"(0.7, 0.15, 0.15); got {fractions!r}."
        ) from None
    if len(fractions) != 3:
        raise ValueError(
            "`fractions` must be three numbers (train, validation, test), e.g. "
            f"(0.7, 0.15, 0.15); got {len(fractions)} numbers."
        )
    if any(not math.isfinite(f) or f < 0 for f in fractions):
        raise ValueError(f"`fractions` must be non-negative, got {fractions}.")
    if abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(
            f"`fractions` must sum to 1, got {fractions} (sum {sum(fractions):g})."
        )
    return fractions


def _is_array(x) -> bool:
    return isinstance(x, np.ndarray) and x.dtype != object


def _as_series_list(x, name: str) -> list[np.ndarray]:
    if _is_array(x):
        if x.ndim != 3:
            raise ValueError(
                f"{name}: `x` must have shape (N, T, P) or be a sequence of (T_i, P) "
                f"arrays; got an array of shape {x.shape}. For univariate series add "
                "a channel axis: `x[..., None]`."
            )
        items = list(x)
    elif isinstance(x, (str, bytes)) or not isinstance(x, (Sequence, np.ndarray)):
        raise TypeError(
            f"{name}: `x` must be an array of shape (N, T, P) or a sequence of "
            f"(T_i, P) arrays, got {type(x).__name__}."
        )
    else:
        items = list(x)
    if len(items) == 0:
        raise ValueError(f"{name}: `x` contains no series.")
    series = []
    for i, item in enumerate(items):
        arr = np.asarray(item)
        if arr.dtype == object or not (
            np.issubdtype(arr.dtype, np.number) or arr.dtype == bool
        ):
            raise TypeError(
                f"{name}: series {i} has dtype {arr.dtype}; series must be numeric."
            )
        if np.iscomplexobj(arr):
            raise TypeError(f"{name}: series {i} is complex; series must be real.")
        if arr.ndim != 2:
            raise ValueError(
                f"{name}: series {i} has shape {arr.shape}; each series must have "
                "shape (T_i, P) (time first, channels last). For univariate series "
                "add a channel axis: `s[:, None]`."
            )
        if arr.shape[0] == 0:
            raise ValueError(f"{name}: series {i} is empty (length 0).")
        series.append(arr.astype(np.float64))
    channels = {s.shape[1] for s in series}
    if len(channels) != 1:
        raise ValueError(
            f"{name}: all series must have the same number of channels P; found "
            f"{sorted(channels)}."
        )
    return series


def _check_finite(arrays: list[np.ndarray], name: str, *, targets=False) -> None:
    """Refuse cases with NaN or infinite values, naming the first ten (`targets`:
    the arrays are the cases' regression targets, not their series)."""
    bad = [i for i, a in enumerate(arrays) if not np.isfinite(a).all()]
    if not bad:
        return
    nan = sum(bool(np.isnan(arrays[i]).any()) for i in bad)
    shown = ", ".join(str(i) for i in bad[:10]) + (", ..." if len(bad) > 10 else "")
    what = "the regression targets of " if targets else ""
    fix = (
        "Drop those cases or impute their targets before training."
        if targets
        else "Impute or drop them before training (the UEA archive ships imputed "
        "'_nmv' versions of data sets with missing values)."
    )
    raise ValueError(
        f"{name}: {what}{len(bad)} of {len(arrays)} cases contain NaN or infinite "
        f"values ({nan} with NaN; case indices {shown}). {fix}"
    )


def _encode_labels(y, n: int, classes, name: str):
    labels = np.asarray(y)
    if labels.ndim != 1:
        raise ValueError(
            f"{name}: classification labels must be one per series, shape ({n},); "
            f"got shape {labels.shape}."
        )
    if labels.shape[0] != n:
        raise ValueError(
            f"{name}: got {n} series but {labels.shape[0]} labels; there must be one "
            "label per series."
        )
    if labels.dtype == object:
        labels = np.asarray([str(v) for v in labels])
    if np.issubdtype(labels.dtype, np.floating):
        if not np.isfinite(labels).all() or np.any(labels != np.round(labels)):
            raise ValueError(
                f"{name}: the labels are non-integer floats; they look like regression "
                "targets. Pass `task='regression'`, or integer/string class labels."
            )
        labels = labels.astype(np.int64)
    if classes is None:
        classes = tuple(str(c) for c in np.unique(labels))
    else:
        classes = tuple(str(c) for c in classes)
        if len(set(classes)) != len(classes):
            raise ValueError(f"{name}: `classes` has repeated entries: {classes}.")
    if len(classes) == 0:
        raise ValueError(f"{name}: no classes.")
    lookup = {c: i for i, c in enumerate(classes)}
    as_str = [str(v) for v in labels.tolist()]
    unknown = sorted({s for s in as_str if s not in lookup})
    if unknown:
        raise ValueError(
            f"{name}: labels {unknown[:10]} are not among the declared classes "
            f"{list(classes)}; the labels are not consistent with the classes."
        )
    encoded = np.asarray([lookup[s] for s in as_str], dtype=np.int32)
    return encoded, classes


def _regression_targets(y, series: list[np.ndarray], name: str):
    """Float32 targets: an array `(N,)` or `(N, K)` (one per series), or a list of
    `N` arrays `(T_i, K)` (one per step, each as long as its series)."""
    n = len(series)
    try:
        targets = np.asarray(y)
    except ValueError:  # a ragged sequence: per-step targets of unequal lengths
        targets = None
    if targets is None or targets.dtype == object or targets.ndim == 3:
        return _per_step_targets(y, series, name)
    if not np.issubdtype(targets.dtype, np.number) or np.iscomplexobj(targets):
        raise TypeError(f"{name}: regression targets must be real numbers.")
    if targets.ndim not in (1, 2) or targets.shape[0] != n:
        raise ValueError(
            f"{name}: regression targets must have shape ({n},) or ({n}, K) (one per "
            f"series), or ({n}, T, K) (one per step); got {targets.shape}."
        )
    _check_finite(list(targets.reshape(n, -1)), name, targets=True)
    return targets.astype(np.float32)


def _per_step_targets(y, series: list[np.ndarray], name: str) -> list[np.ndarray]:
    n = len(series)
    items = list(y)
    if len(items) != n:
        raise ValueError(
            f"{name}: got {n} series but per-step targets for {len(items)}; there "
            "must be one target series per input series."
        )
    targets = []
    for i, item in enumerate(items):
        arr = np.asarray(item)
        if (
            arr.dtype == object
            or not np.issubdtype(arr.dtype, np.number)
            or np.iscomplexobj(arr)
        ):
            raise TypeError(f"{name}: regression targets must be real numbers.")
        if arr.ndim != 2:
            raise ValueError(
                f"{name}: the per-step targets of series {i} have shape {arr.shape}; "
                "each must have shape (T_i, K), one row per step of its series."
            )
        if arr.shape[0] != series[i].shape[0]:
            raise ValueError(
                f"{name}: the per-step targets of series {i} have {arr.shape[0]} "
                f"steps but the series has {series[i].shape[0]}; per-step targets "
                "must have the length of their series (one target row per step)."
            )
        targets.append(arr)
    widths = {t.shape[1] for t in targets}
    if len(widths) != 1:
        raise ValueError(
            f"{name}: per-step targets must all have the same number of outputs K; "
            f"found {sorted(widths)}."
        )
    _check_finite(targets, name, targets=True)
    return [t.astype(np.float32) for t in targets]


# ------------------------------------------------------------------------- protocol


def _first_occurrences(
    series: list[np.ndarray], labels: np.ndarray | list, name: str, times=None
):
    """Indices of the first occurrence of each distinct series (values, and time
    stamps when given), in order."""
    seen: dict[bytes, list[int]] = {}
    keep = []
    conflicts = 0

    def same(i, j):
        return np.array_equal(series[i], series[j]) and (
            times is None or np.array_equal(times[i], times[j])
        )

    for i, s in enumerate(series):
        # `+ 0.0` maps -0.0 to 0.0, so that equal values have equal bytes.
        canonical = np.ascontiguousarray(s + 0.0)
        h = hashlib.blake2b(repr(canonical.shape).encode(), digest_size=16)
        h.update(canonical.tobytes())
        if times is not None:
            h.update(np.ascontiguousarray(times[i] + 0.0).tobytes())
        candidates = seen.setdefault(h.digest(), [])
        original = next((j for j in candidates if same(j, i)), None)
        if original is None:
            candidates.append(i)
            keep.append(i)
        elif not np.array_equal(labels[original], labels[i]):
            conflicts += 1
    if conflicts:
        warnings.warn(
            f"{name}: {conflicts} duplicate series carry a label different from their "
            "first occurrence; the first occurrence's label was kept.",
            stacklevel=3,
        )
    return np.asarray(keep, dtype=np.int64)


def _split_positions(m: int, seed, fractions, name: str, num_duplicates: int):
    sizes = split_sizes(m, fractions)
    if min(sizes) == 0:
        raise ValueError(
            f"{name}: {m} cases (after dropping {num_duplicates} duplicates) split "
            f"with fractions {fractions} give train/val/test sizes {sizes}; every "
            "split needs at least one case. Use a larger data set or other fractions."
        )
    perm = np.random.default_rng(seed).permutation(m)
    b1, b2 = sizes[0], sizes[0] + sizes[1]
    return perm[:b1], perm[b1:b2], perm[b2:]


def _channel_statistics(train_series: list[np.ndarray]):
    count = sum(s.shape[0] for s in train_series)
    mean = sum(s.sum(axis=0) for s in train_series) / count
    var = sum(((s - mean) ** 2).sum(axis=0) for s in train_series) / count
    std = np.sqrt(var)
    return mean, np.where(std > 0, std, 1.0)


def _time_scale(stamps: list[np.ndarray]) -> tuple[float, float]:
    """Offset and range of the time channel: the earliest stamp and the span of
    all stamps (1 when they are all equal)."""
    start = min(float(t[0]) for t in stamps)
    span = max(float(t[-1]) for t in stamps) - start
    return start, span if span > 0 else 1.0


def _drop(series, stamps, drop_rate: float, drop_seed: int, case: int):
    """One case after the random drop: its kept samples, their time stamps and
    their positions in the series."""
    kept = _kept_positions(series.shape[0], drop_rate, drop_seed, case)
    return series[kept], stamps[kept], kept


def _build_split(
    cases, labels, indices, max_length, mean, std, time_channel, scale, with_times
):
    n = len(indices)
    channels = next(iter(cases.values()))[0].shape[1] + int(time_channel)
    x = np.zeros((n, max_length, channels), dtype=np.float32)
    times = np.zeros((n, max_length), dtype=np.float64)
    lengths = np.zeros((n,), dtype=np.int32)
    offset = int(time_channel)
    start, span = scale
    per_step = isinstance(labels, dict)
    if per_step:
        width = next(iter(labels.values())).shape[1]
        y = np.zeros((n, max_length, width), dtype=np.float32)
    else:
        y = labels[indices]
    for row, i in enumerate(indices):
        s, t, _ = cases[int(i)]
        if per_step:
            y[row, : s.shape[0]] = labels[int(i)]
        length = s.shape[0]
        if mean is not None:
            s = (s - mean) / std
        x[row, :length, offset:] = s
        if time_channel:
            x[row, :length, 0] = (t - start) / span
        times[row] = _pad_times(t, max_length)
        lengths[row] = length
    mask = np.arange(max_length)[None, :] < lengths[:, None]
    return Split(
        x=x,
        mask=mask,
        y=y,
        lengths=lengths,
        indices=np.asarray(indices, dtype=np.int64),
        times=times if with_times else None,
    )
