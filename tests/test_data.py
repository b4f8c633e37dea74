"""Tests of `lrc_toolkit.data`: the UEA protocol (merge, deduplicate, permute, split
70/15/15, normalise on train), padding and masks, time stamps and the random drop of
the neural-CDE protocol, per-step Δt, and the error messages.

References are computed independently here: the raw series come straight from
aeon (or from `.ts` files written by hand), duplicates are found with a plain
Python loop, statistics with NumPy over the unpadded series."""

import dataclasses
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from aeon.datasets import load_classification

from lrc_toolkit.data import (
    BUNDLED_DATASETS,
    default_data_dir,
    DEFAULT_DROP_SEED,
    load_arrays,
    load_uea,
    PAPER_DATASETS,
    PAPER_SEEDS,
    Split,
    split_sizes,
    time_steps,
    UEADataset,
)


# ------------------------------------------------------------------------- helpers


def _raw(name):
    """The archive's train then test cases, as lists of (T_i, P) float64 arrays."""
    xs, ys = [], []
    for split in ("train", "test"):
        x, y = load_classification(name, split=split)
        xs += [np.asarray(s, dtype=np.float64).T for s in x]
        ys += list(np.asarray(y).astype(str))
    return xs, np.asarray(ys)


def _first_occurrences(series):
    """Indices of the first occurrence of every distinct series (plain loop)."""
    keep = []
    for i, s in enumerate(series):
        if not any(series[j].shape == s.shape and (series[j] == s).all() for j in keep):
            keep.append(i)
    return keep


def _all_indices(ds):
    return [ds.train.indices, ds.val.indices, ds.test.indices]


def _write_ts(path, name, series, labels, classes):
    """Write aeon's `.ts` format by hand: one case per line, channels separated by
    ':', values by ',', the class label last."""
    lengths = {s.shape[0] for s in series}
    lines = [
        "# A tiny hand-written test file.",
        f"@problemName {name}",
        "@timeStamps false",
        "@missing false",
        f"@univariate {'true' if series[0].shape[1] == 1 else 'false'}",
        f"@dimensions {series[0].shape[1]}",
        f"@equalLength {'true' if len(lengths) == 1 else 'false'}",
    ]
    if len(lengths) == 1:
        lines.append(f"@seriesLength {lengths.pop()}")
    lines += ["@classLabel true " + " ".join(classes), "@data"]
    for s, label in zip(series, labels):
        channels = [
            ",".join(repr(float(v)) for v in s[:, c]) for c in range(s.shape[1])
        ]
        lines.append(":".join(channels) + ":" + label)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def _fake_dataset(root, name, *, n_train, n_test, length=8, channels=2, seed=0):
    rng = np.random.default_rng(seed)
    classes = ("neg", "pos")
    series = [
        np.round(rng.normal(size=(length, channels)), 4)
        for _ in range(n_train + n_test)
    ]
    labels = [classes[i % 2] for i in range(n_train + n_test)]
    _write_ts(
        root / name / f"{name}_TRAIN.ts",
        name,
        series[:n_train],
        labels[:n_train],
        classes,
    )
    _write_ts(
        root / name / f"{name}_TEST.ts",
        name,
        series[n_train:],
        labels[n_train:],
        classes,
    )
    return series, labels, classes


# ------------------------------------------------------------------------ protocol


def test_constants():
    assert PAPER_SEEDS == (2345, 3456, 4567, 5678, 6789)
    assert PAPER_DATASETS == (
        "Heartbeat",
        "SelfRegulationSCP1",
        "SelfRegulationSCP2",
        "EthanolConcentration",
        "MotorImagery",
        "EigenWorms",
    )
    assert {"BasicMotions", "JapaneseVowels"} <= set(BUNDLED_DATASETS)


@pytest.mark.parametrize(
    "cases, sizes",
    # The paper's table (cases after dedupe -> train/val/test).
    [
        (409, (286, 61, 62)),
        (561, (392, 84, 85)),
        (380, (266, 57, 57)),
        (524, (366, 79, 79)),
        (378, (264, 57, 57)),
        (236, (165, 35, 36)),
    ],
)
def test_split_sizes_match_paper(cases, sizes):
    assert split_sizes(cases) == sizes


def test_basicmotions_split_covers_deduplicated_set():
    raw_x, raw_y = _raw("BasicMotions")
    keep = _first_occurrences(raw_x)
    ds = load_uea("BasicMotions", seed=PAPER_SEEDS[0], normalise=False)
    assert isinstance(ds, UEADataset) and isinstance(ds.train, Split)
    m = len(keep)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (
        int(0.7 * m),
        int(0.85 * m) - int(0.7 * m),
        m - int(0.85 * m),
    )
    parts = [set(i.tolist()) for i in _all_indices(ds)]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert parts[0] | parts[1] | parts[2] == set(keep)
    assert ds.num_duplicates == len(raw_x) - m
    assert (ds.num_classes, ds.input_size, ds.max_length) == (4, 6, 100)
    for split in ds.splits.values():
        assert split.x.dtype == np.float32 and split.y.dtype == np.int32
        assert split.mask.dtype == bool and split.lengths.dtype == np.int32
        for row, i in enumerate(split.indices):
            np.testing.assert_array_equal(split.x[row], raw_x[i].astype(np.float32))
            assert ds.classes[split.y[row]] == raw_y[i]


def test_same_seed_same_split_different_seed_different():
    a = load_uea("BasicMotions", seed=2345)
    b = load_uea("BasicMotions", seed=2345)
    c = load_uea("BasicMotions", seed=3456)
    for sa, sb in zip(a.splits.values(), b.splits.values()):
        for field in ("x", "mask", "y", "lengths", "indices"):
            np.testing.assert_array_equal(getattr(sa, field), getattr(sb, field))
    assert not np.array_equal(a.train.indices, c.train.indices)
    assert set(a.test.indices.tolist()) != set(c.test.indices.tolist())


def test_permutation_procedure_is_the_documented_one():
    # Documented: perm = default_rng(seed).permutation(M) over the kept cases in
    # their original order; train = perm[:floor(.7M)], val = next, test = rest.
    raw_x, _ = _raw("JapaneseVowels")
    keep = np.asarray(_first_occurrences(raw_x))
    seed = PAPER_SEEDS[2]
    ds = load_uea("JapaneseVowels", seed=seed)
    perm = np.random.default_rng(seed).permutation(len(keep))
    b1, b2 = int(0.7 * len(keep)), int(0.85 * len(keep))
    np.testing.assert_array_equal(ds.train.indices, keep[perm[:b1]])
    np.testing.assert_array_equal(ds.val.indices, keep[perm[b1:b2]])
    np.testing.assert_array_equal(ds.test.indices, keep[perm[b2:]])


def test_dedupe_on_constructed_arrays():
    rng = np.random.default_rng(0)
    unique = [rng.normal(size=(int(rng.integers(3, 9)), 2)) for _ in range(20)]
    labels = [i % 3 for i in range(20)]
    # copies: 2 exact duplicates with the same label, 1 with a conflicting label,
    # and a near-duplicate (one value changed) that must be kept.
    near = unique[5].copy()
    near[0, 0] += 1e-9
    series = unique + [unique[3].copy(), unique[7].copy(), unique[11].copy(), near]
    labels = labels + [labels[3], labels[7], (labels[11] + 1) % 3, labels[5]]
    with pytest.warns(UserWarning, match="1 duplicate series carry a label"):
        ds = load_arrays(series, labels, seed=1, normalise=False)
    assert ds.num_duplicates == 3
    covered = np.sort(np.concatenate(_all_indices(ds)))
    np.testing.assert_array_equal(covered, list(range(20)) + [23])
    assert _first_occurrences(series) == covered.tolist()
    # The kept copy of the conflicting pair is the first one, with its label.
    for split in ds.splits.values():
        for row, i in enumerate(split.indices):
            assert split.y[row] == labels[i]
    no_dedupe = load_arrays(series, labels, seed=1, deduplicate=False)
    assert no_dedupe.num_duplicates == 0
    assert sum(len(s) for s in no_dedupe.splits.values()) == len(series)


def test_normalisation_uses_train_statistics_only():
    raw = load_uea("JapaneseVowels", seed=4567, normalise=False)
    ds = load_uea("JapaneseVowels", seed=4567)
    # Independent statistics: the real steps of the raw training series.
    raw_x, _ = _raw("JapaneseVowels")
    steps = np.concatenate([raw_x[i] for i in ds.train.indices])
    mean, std = steps.mean(axis=0), steps.std(axis=0)
    np.testing.assert_allclose(ds.mean, mean, rtol=1e-5)
    np.testing.assert_allclose(ds.std, std, rtol=1e-5)
    for name in ("train", "val", "test"):
        s, r = ds.splits[name], raw.splits[name]
        np.testing.assert_array_equal(s.indices, r.indices)
        for row, i in enumerate(s.indices):
            n = s.lengths[row]
            np.testing.assert_allclose(
                s.x[row, :n], (raw_x[i] - mean) / std, rtol=1e-5, atol=1e-5
            )
            np.testing.assert_array_equal(s.x[row, n:], 0.0)
    train_steps = ds.train.x[ds.train.mask]
    np.testing.assert_allclose(train_steps.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(train_steps.std(axis=0), 1.0, atol=1e-4)
    # Statistics over all cases differ: the held-out data did not leak in.
    everything = np.concatenate(raw_x)
    assert not np.allclose(everything.mean(axis=0), mean, rtol=1e-3, atol=1e-3)


def test_japanese_vowels_masks_and_lengths():
    raw_x, _ = _raw("JapaneseVowels")
    raw_lengths = np.asarray([s.shape[0] for s in raw_x])
    assert len(raw_x) == 640 and raw_lengths.min() == 7 and raw_lengths.max() == 29
    ds = load_uea("JapaneseVowels", seed=5678)
    assert ds.max_length == 29 and ds.input_size == 12 and ds.num_classes == 9
    for split in ds.splits.values():
        np.testing.assert_array_equal(split.lengths, raw_lengths[split.indices])
        for row, n in enumerate(split.lengths):
            assert split.mask[row, :n].all() and not split.mask[row, n:].any()
            np.testing.assert_array_equal(split.x[row, n:], 0.0)
        assert split.y.min() >= 0 and split.y.max() < ds.num_classes
    covered = np.concatenate(_all_indices(ds))
    assert sorted(covered.tolist()) == _first_occurrences(raw_x)


def test_time_channel():
    plain = load_uea("JapaneseVowels", seed=6789)
    ds = load_uea("JapaneseVowels", seed=6789, time_channel=True)
    assert ds.input_size == plain.input_size + 1 and ds.time_channel
    t_max = ds.max_length
    for name, split in ds.splits.items():
        np.testing.assert_array_equal(split.x[..., 1:], plain.splits[name].x)
        for row, n in enumerate(split.lengths):
            expected = np.zeros(t_max, dtype=np.float32)
            expected[:n] = [k / (t_max - 1) for k in range(n)]
            np.testing.assert_allclose(split.x[row, :, 0], expected, rtol=1e-6)
    # Equal-length data: the time channel is linspace(0, 1, T) for every series.
    bm = load_uea("BasicMotions", time_channel=True)
    np.testing.assert_allclose(
        bm.train.x[:, :, 0],
        np.broadcast_to(np.linspace(0, 1, 100), (56, 100)),
        atol=1e-6,
    )


def test_load_arrays_fixed_length_and_regression():
    rng = np.random.default_rng(3)
    x = rng.normal(loc=5.0, scale=2.0, size=(40, 6, 3))
    y = rng.integers(0, 2, size=40)
    ds = load_arrays(x, y, seed=7, classes=(0, 1))
    assert ds.classes == ("0", "1") and len(ds.train) == 28 and ds.max_length == 6
    np.testing.assert_array_equal(ds.train.y, y[ds.train.indices])
    targets = rng.normal(size=(40, 2))
    reg = load_arrays(x, targets, seed=7, task="regression")
    assert reg.classes == () and reg.num_classes == 0
    np.testing.assert_allclose(reg.test.y, targets[reg.test.indices], rtol=1e-6)


# ------------------------------------------------------------------- local files


def test_paper_dataset_from_local_directory(tmp_path):
    series, labels, classes = _fake_dataset(
        tmp_path, "Heartbeat", n_train=20, n_test=20
    )
    ds = load_uea("Heartbeat", seed=PAPER_SEEDS[1], data_dir=tmp_path, normalise=False)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (28, 6, 6)
    assert ds.classes == classes and ds.input_size == 2 and ds.max_length == 8
    for split in ds.splits.values():
        for row, i in enumerate(split.indices):
            np.testing.assert_allclose(split.x[row], series[i], rtol=1e-6)
            assert ds.classes[split.y[row]] == labels[i]


def test_default_data_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("LRC_TOOLKIT_DATA", str(tmp_path))
    assert default_data_dir() == tmp_path
    _fake_dataset(tmp_path, "EigenWorms", n_train=10, n_test=10, channels=1)
    ds = load_uea("EigenWorms")
    assert len(ds.train) + len(ds.val) + len(ds.test) == 20 and ds.input_size == 1


def test_duplicates_across_train_and_test_files(tmp_path):
    series, labels, classes = _fake_dataset(tmp_path, "Mine", n_train=12, n_test=12)
    # Rewrite the test file with copies of three training cases appended.
    test = series[12:] + [series[0], series[4], series[9]]
    test_labels = labels[12:] + [labels[0], labels[4], labels[9]]
    _write_ts(tmp_path / "Mine" / "Mine_TEST.ts", "Mine", test, test_labels, classes)
    ds = load_uea("Mine", data_dir=tmp_path)
    assert ds.num_duplicates == 3
    assert sorted(np.concatenate(_all_indices(ds)).tolist()) == list(range(24))


# ------------------------------------------------------------------------- errors


def test_unknown_name():
    with pytest.raises(
        ValueError,
        match="Unknown data set 'Heartbeet'.*Did you mean 'Heartbeat'.*BasicMotions",
    ):
        load_uea("Heartbeet")


def test_missing_files_say_where_to_download(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_uea("Heartbeat", data_dir=tmp_path)
    message = str(info.value)
    assert "https://www.timeseriesclassification.com/dataset.php" in message
    assert "Multivariate_ts" in message
    assert str(tmp_path / "Heartbeat" / "Heartbeat_TRAIN.ts") in message
    assert str(tmp_path / "Heartbeat" / "Heartbeat_TEST.ts") in message
    assert list(pathlib.Path(tmp_path).iterdir()) == []  # nothing created


def test_only_train_file_present(tmp_path):
    _fake_dataset(tmp_path, "MotorImagery", n_train=10, n_test=10)
    (tmp_path / "MotorImagery" / "MotorImagery_TEST.ts").unlink()
    with pytest.raises(FileNotFoundError, match="found only .*MotorImagery_TRAIN.ts"):
        load_uea("MotorImagery", data_dir=tmp_path)


def test_nan_in_arrays():
    x = np.ones((10, 5, 2))
    x[2, 1, 0] = np.nan
    x[7, 4, 1] = np.nan
    x[8, 0, 0] = np.inf
    with pytest.raises(
        ValueError,
        match=r"mydata: 3 of 10 cases contain NaN or infinite values \(2 with NaN",
    ):
        load_arrays(x, np.arange(10) % 2, seed=0, name="mydata")


def test_nan_in_ts_file(tmp_path):
    series, labels, classes = _fake_dataset(
        tmp_path, "SelfRegulationSCP1", n_train=10, n_test=10
    )
    series[3] = series[3].copy()
    series[3][2, 1] = np.nan
    _write_ts(
        tmp_path / "SelfRegulationSCP1" / "SelfRegulationSCP1_TRAIN.ts",
        "SelfRegulationSCP1",
        series[:10],
        labels[:10],
        classes,
    )
    with pytest.raises(
        ValueError, match="SelfRegulationSCP1: 1 of 20 cases contain NaN"
    ):
        load_uea("SelfRegulationSCP1", data_dir=tmp_path)


def test_inconsistent_labels(tmp_path):
    x = np.zeros((10, 4, 1)) + np.arange(10)[:, None, None]
    with pytest.raises(
        ValueError, match=r"labels \['7'\] are not among the declared classes"
    ):
        load_arrays(x, [0, 1] * 4 + [7, 1], seed=0, classes=(0, 1))
    with pytest.raises(ValueError, match="got 10 series but 9 labels"):
        load_arrays(x, [0] * 9, seed=0)
    with pytest.raises(ValueError, match="look like regression targets"):
        load_arrays(x, np.linspace(0, 1, 10), seed=0)
    # A .ts file whose labels are not among the classes its header declares.
    series, labels, classes = _fake_dataset(tmp_path, "Bad", n_train=10, n_test=10)
    labels = labels[:9] + ["maybe"]
    _write_ts(tmp_path / "Bad" / "Bad_TRAIN.ts", "Bad", series[:10], labels, classes)
    with pytest.raises(ValueError, match=r"Bad: labels \['maybe'\] are not among"):
        load_uea("Bad", data_dir=tmp_path)
    # Train and test files that declare different classes.
    _write_ts(
        tmp_path / "Bad" / "Bad_TRAIN.ts",
        "Bad",
        series[:10],
        ["neg"] * 10,
        ("neg", "other"),
    )
    with pytest.raises(ValueError, match="train file declares the classes"):
        load_uea("Bad", data_dir=tmp_path)


def test_empty_split_for_tiny_dataset():
    x = np.arange(12.0).reshape(4, 3, 1)
    with pytest.raises(
        ValueError,
        match=r"3 cases .* give train/val/test sizes \(2, 0, 1\); every split needs",
    ):
        load_arrays(x[:3], [0, 1, 0], seed=0)
    # Four distinct cases are enough: 2/1/1.
    ds = load_arrays(x, [0, 1, 0, 1], seed=0)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (2, 1, 1)
    # Duplicates count against the size: four copies of one series are one case.
    with pytest.raises(ValueError, match=r"1 cases \(after dropping 3 duplicates\)"):
        load_arrays(np.stack([x[0]] * 4), [0] * 4, seed=0)


def test_bad_fractions():
    x = np.arange(60.0).reshape(20, 3, 1)
    y = np.arange(20) % 2
    with pytest.raises(ValueError, match="must sum to 1"):
        load_arrays(x, y, seed=0, fractions=(0.7, 0.2, 0.2))
    with pytest.raises(ValueError, match="three numbers"):
        load_arrays(x, y, seed=0, fractions=(0.8, 0.2))
    with pytest.raises(ValueError, match="non-negative"):
        load_arrays(x, y, seed=0, fractions=(1.2, -0.1, -0.1))
    with pytest.raises(ValueError, match="must sum to 1"):
        load_uea("BasicMotions", fractions=(0.5, 0.15, 0.15))


def test_bad_shapes():
    with pytest.raises(ValueError, match=r"add a channel axis"):
        load_arrays(np.zeros((10, 5)), np.arange(10) % 2, seed=0)
    with pytest.raises(ValueError, match="same number of channels"):
        load_arrays([np.zeros((4, 2)), np.zeros((4, 3))] * 3, [0, 1] * 3, seed=0)


def test_rewritten_file_is_read_again(tmp_path):
    # Parsed files are memoised per process; a changed file must be parsed again,
    # even when its modification time is unchanged.
    series, labels, classes = _fake_dataset(tmp_path, "Cached", n_train=10, n_test=10)
    train_file = tmp_path / "Cached" / "Cached_TRAIN.ts"
    first = load_uea("Cached", data_dir=tmp_path, normalise=False)
    stat = train_file.stat()
    _write_ts(train_file, "Cached", [-s for s in series[:10]], labels[:10], classes)

    os.utime(train_file, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    second = load_uea("Cached", data_dir=tmp_path, normalise=False)
    for a, b in zip(first.splits.values(), second.splits.values()):
        np.testing.assert_array_equal(a.indices, b.indices)
        is_train = a.indices < 10
        np.testing.assert_array_equal(b.x[is_train], -a.x[is_train])
        np.testing.assert_array_equal(b.x[~is_train], a.x[~is_train])


def test_name_is_not_a_path(tmp_path):
    with pytest.raises(ValueError, match="must be a data set's name"):
        load_uea("../Heartbeat", data_dir=tmp_path)


# ------------------------------------------------------------- time stamps, drop


def _steps_loop(times, length, first=None):
    """Per-step Δt of one padded series by a plain loop: t_k - t_(k-1) on real
    steps k >= 2; Δt_1 = Δt_2 (1 for a single real step) or `first`; padded
    steps repeat the last real step's Δt."""
    out = []
    for k in range(len(times)):
        if k >= length:
            out.append(out[length - 1])
        elif k == 0:
            if first is not None:
                out.append(first)
            else:
                out.append(float(times[1] - times[0]) if length >= 2 else 1.0)
        else:
            out.append(float(times[k] - times[k - 1]))
    return np.asarray(out)


def _padded_times_loop(stamps, max_length):
    """Stamps padded by continuing the last step (a step of 1 for one sample)."""
    out = [float(t) for t in stamps]
    step = out[-1] - out[-2] if len(out) >= 2 else 1.0
    while len(out) < max_length:
        out.append(out[-1] + step)
    return np.asarray(out)


def _irregular_collection(seed=0, n=30):
    """Variable-length series with irregular, strictly increasing stamps; with an
    exact duplicate (values and stamps) and a copy whose stamps differ."""
    rng = np.random.default_rng(seed)
    series, stamps = [], []
    for _ in range(n):
        length = int(rng.integers(1, 9))
        series.append(rng.normal(size=(length, 2)))
        stamps.append(np.cumsum(rng.uniform(0.1, 2.0, size=length)) + 100.0)
    series += [series[4].copy(), series[6].copy()]
    stamps += [stamps[4].copy(), stamps[6] + 0.5]
    labels = [i % 3 for i in range(n)] + [4 % 3, 6 % 3]
    return series, stamps, labels


def test_times_follow_their_rows_through_the_protocol():
    series, stamps, labels = _irregular_collection()
    ds = load_arrays(series, labels, seed=11, times=stamps, time_channel=True)
    # Independent protocol: dedupe on (values, stamps) by a loop, then permute.
    keep = []
    for i in range(len(series)):
        if not any(
            series[j].shape == series[i].shape
            and (series[j] == series[i]).all()
            and (stamps[j] == stamps[i]).all()
            for j in keep
        ):
            keep.append(i)
    assert keep == list(range(30)) + [31]  # 30 copies 4 exactly; 31 differs
    assert ds.num_duplicates == 1 and ds.has_times
    keep = np.asarray(keep)
    perm = np.random.default_rng(11).permutation(len(keep))
    b1, b2 = int(0.7 * len(keep)), int(0.85 * len(keep))
    expected = [keep[perm[:b1]], keep[perm[b1:b2]], keep[perm[b2:]]]
    steps = np.concatenate([series[i] for i in expected[0]])
    mean, std = steps.mean(axis=0), steps.std(axis=0)
    t_max = max(len(s) for s in series)
    t0 = min(stamps[i][0] for i in keep)
    span = max(stamps[i][-1] for i in keep) - t0
    for split, idx in zip(ds.splits.values(), expected):
        np.testing.assert_array_equal(split.indices, idx)
        assert split.times.dtype == np.float64 and split.times.shape == (
            len(idx),
            t_max,
        )
        for row, i in enumerate(idx):
            n = len(series[i])
            assert split.lengths[row] == n and split.mask[row].sum() == n
            np.testing.assert_array_equal(
                split.times[row], _padded_times_loop(stamps[i], t_max)
            )
            np.testing.assert_allclose(
                split.x[row, :n, 1:], (series[i] - mean) / std, rtol=1e-5, atol=1e-6
            )
            np.testing.assert_allclose(
                split.x[row, :n, 0], (stamps[i] - t0) / span, rtol=1e-6
            )
            assert split.y[row] == labels[i]
            np.testing.assert_allclose(
                time_steps(split.times, split.mask)[row],
                _steps_loop(split.times[row], n),
            )


def test_shared_and_per_row_times_for_equal_lengths():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(20, 6, 1))
    y = np.arange(20) % 2
    clock = np.array([0.0, 0.5, 0.75, 2.0, 2.5, 4.0])
    shared = load_arrays(x, y, seed=3, times=clock)
    rows = np.cumsum(rng.uniform(0.5, 1.5, size=(20, 6)), axis=1)
    per_row = load_arrays(x, y, seed=3, times=rows)
    for a, b in zip(shared.splits.values(), per_row.splits.values()):
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_array_equal(a.times, np.broadcast_to(clock, a.times.shape))
        np.testing.assert_array_equal(b.times, rows[b.indices])
    # A shared clock for variable lengths: each series uses its first T_i stamps.
    short = [rng.normal(size=(n, 1)) for n in (6, 3, 5, 6, 2, 4, 6, 1, 5, 3)]
    ds = load_arrays(short, np.arange(10) % 2, seed=0, times=clock)
    for split in ds.splits.values():
        for row, i in enumerate(split.indices):
            n = len(short[i])
            np.testing.assert_array_equal(split.times[row, :n], clock[:n])
            np.testing.assert_array_equal(
                split.times[row], _padded_times_loop(clock[:n], 6)
            )


def test_no_times_no_drop_leaves_times_none():
    ds = load_uea("BasicMotions", seed=3456)
    assert not ds.has_times and ds.drop_rate == 0.0
    assert all(split.times is None for split in ds.splits.values())
    # Stamps 0..T-1 given explicitly reproduce everything, and Δt = 1 throughout.
    x, y = _raw("BasicMotions")
    given = load_arrays(x, y, seed=3456, classes=ds.classes, times=np.arange(100))
    for a, b in zip(ds.splits.values(), given.splits.values()):
        for field in ("x", "mask", "y", "lengths", "indices"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
        np.testing.assert_array_equal(time_steps(b.times, b.mask), 1.0)


def test_time_steps_against_loop():
    rng = np.random.default_rng(4)
    lengths = np.array([1, 2, 5, 7, 3])
    times = np.cumsum(rng.uniform(0.2, 3.0, size=(5, 7)), axis=1)
    mask = np.arange(7)[None, :] < lengths[:, None]
    # Arbitrary (even decreasing) stamps on the padded steps are ignored.
    times[mask == False] = -5.0  # noqa: E712
    expected = np.stack([_steps_loop(t, n) for t, n in zip(times, lengths)])
    np.testing.assert_allclose(time_steps(times, mask), expected, rtol=1e-12)
    first = np.stack([_steps_loop(t, n, first=0.25) for t, n in zip(times, lengths)])
    np.testing.assert_allclose(time_steps(times, mask, first=0.25), first)
    # Without a mask every step is real; one series of shape (T,).
    np.testing.assert_allclose(time_steps(times[3]), _steps_loop(times[3], 7))
    np.testing.assert_array_equal(time_steps(np.array([3.0])), [1.0])
    np.testing.assert_array_equal(time_steps(np.arange(4)), [1.0, 1.0, 1.0, 1.0])
    # JAX arrays, under jit, in float32.
    jitted = jax.jit(time_steps)(jnp.asarray(times, jnp.float32), jnp.asarray(mask))
    assert isinstance(jitted, jax.Array) and jitted.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(jitted), expected, rtol=1e-5)
    # The padding of `load_arrays` makes the mask unnecessary.
    series, stamps, labels = _irregular_collection(seed=5)
    split = load_arrays(series, labels, seed=0, times=stamps).train
    np.testing.assert_array_equal(
        time_steps(split.times), time_steps(split.times, split.mask)
    )
    assert (time_steps(split.times) > 0).all()


@pytest.mark.parametrize("name", ["BasicMotions", "JapaneseVowels"])
@pytest.mark.parametrize("rate", [0.3, 0.7])
def test_drop_keeps_original_positions(name, rate):
    raw_x, raw_y = _raw(name)
    ds = load_uea(name, seed=PAPER_SEEDS[0], normalise=False, drop_rate=rate)
    full = load_uea(name, seed=PAPER_SEEDS[0], normalise=False)
    assert ds.drop_rate == rate and ds.drop_seed == DEFAULT_DROP_SEED == 56789
    kept_lengths = []
    for key, split in ds.splits.items():
        np.testing.assert_array_equal(split.indices, full.splits[key].indices)
        for row, i in enumerate(split.indices):
            length = raw_x[i].shape[0]
            n = int(split.lengths[row])
            # The documented count and the documented draw.
            assert n == length - int(np.floor(rate * length + 1e-9))
            removed = np.random.default_rng((56789, int(i))).permutation(length)
            kept = np.sort(removed[length - n :])
            np.testing.assert_array_equal(split.times[row, :n], kept)
            assert split.mask[row, :n].all() and not split.mask[row, n:].any()
            np.testing.assert_array_equal(
                split.x[row, :n], raw_x[i][kept].astype(np.float32)
            )
            np.testing.assert_array_equal(split.x[row, n:], 0.0)
            np.testing.assert_array_equal(
                split.times[row], _padded_times_loop(kept, ds.max_length)
            )
            assert ds.classes[split.y[row]] == raw_y[i]
            kept_lengths.append(n)
    assert ds.max_length == max(kept_lengths)


def test_drop_is_reproducible_and_independent_of_the_split_seed():
    a = load_uea("JapaneseVowels", seed=2345, drop_rate=0.5)
    b = load_uea("JapaneseVowels", seed=2345, drop_rate=0.5)
    for sa, sb in zip(a.splits.values(), b.splits.values()):
        for field in ("x", "mask", "y", "lengths", "indices", "times"):
            np.testing.assert_array_equal(getattr(sa, field), getattr(sb, field))
    c = load_uea("JapaneseVowels", seed=2345, drop_rate=0.5, drop_seed=1)
    assert not np.array_equal(a.train.times, c.train.times)

    # Another split seed: each case is dropped the same way, wherever it lands.
    def by_case(ds):
        out = {}
        for split in ds.splits.values():
            for row, i in enumerate(split.indices):
                out[int(i)] = split.times[row, : split.lengths[row]]
        return out

    d = load_uea("JapaneseVowels", seed=6789, drop_rate=0.5)
    ta, td = by_case(a), by_case(d)
    assert ta.keys() == td.keys()
    for i in ta:
        np.testing.assert_array_equal(ta[i], td[i])


def test_drop_with_normalisation_time_channel_and_own_times():
    raw_x, _ = _raw("JapaneseVowels")
    ds = load_uea("JapaneseVowels", seed=4567, drop_rate=0.5, time_channel=True)
    # Statistics over the kept training samples only.
    kept = [
        raw_x[i][ds.train.times[row, : ds.train.lengths[row]].astype(int)]
        for row, i in enumerate(ds.train.indices)
    ]
    steps = np.concatenate(kept)
    np.testing.assert_allclose(ds.mean, steps.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(ds.std, steps.std(axis=0), rtol=1e-5)
    # The time channel is the sample's original position over the original T - 1.
    for split in ds.splits.values():
        channel = split.x[..., 0][split.mask]
        np.testing.assert_allclose(channel, split.times[split.mask] / 28, rtol=1e-6)
    # Own stamps survive the drop with their samples.
    series, stamps, labels = _irregular_collection(seed=6, n=40)
    own = load_arrays(series, labels, seed=0, times=stamps, drop_rate=0.5)
    for split in own.splits.values():
        for row, i in enumerate(split.indices):
            length = len(series[i])
            n = int(split.lengths[row])
            assert n == length - (length // 2)
            removed = np.random.default_rng((56789, int(i))).permutation(length)
            kept = np.sort(removed[length - n :])
            np.testing.assert_array_equal(split.times[row, :n], stamps[i][kept])


def test_bad_times_and_drop_arguments():
    x = np.random.default_rng(0).normal(size=(10, 4, 1))
    y = np.arange(10) % 2
    good = np.arange(4.0)
    with pytest.raises(ValueError, match=r"1 of 10 series are not strictly increasing"):
        load_arrays(x, y, seed=0, times=np.stack([good] * 9 + [good[::-1]]))
    repeated = np.stack([good] * 10)
    repeated[3, 2] = repeated[3, 1]
    with pytest.raises(ValueError, match=r"not strictly increasing \(case indices 3\)"):
        load_arrays(x, y, seed=0, times=repeated)
    nan = np.stack([good] * 10)
    nan[5, 0] = np.nan
    with pytest.raises(ValueError, match="contain NaN or infinite values"):
        load_arrays(x, y, seed=0, times=nan)
    with pytest.raises(ValueError, match=r"shape of the data's time axis: \(10, 4\)"):
        load_arrays(x, y, seed=0, times=np.zeros((10, 5)))
    with pytest.raises(ValueError, match=r"\(10, 4\).*got an array of shape \(3,\)"):
        load_arrays(x, y, seed=0, times=np.arange(3.0))
    variable = [np.zeros((n, 1)) + n for n in (2, 3, 4, 2, 3, 4)]
    with pytest.raises(ValueError, match="sequence of 6 arrays of shapes"):
        load_arrays(variable, [0, 1] * 3, seed=0, times=np.zeros((6, 4)))
    with pytest.raises(ValueError, match="series 1 has 3 steps but its time stamps"):
        load_arrays(variable, [0, 1] * 3, seed=0, times=[np.arange(2)] * 6)
    with pytest.raises(ValueError, match="got 5 entries"):
        load_arrays(variable, [0, 1] * 3, seed=0, times=[np.arange(2)] * 5)
    with pytest.raises(TypeError, match="must be real numbers"):
        load_arrays(x, y, seed=0, times=np.array(["a", "b", "c", "d"]))
    for rate in (1.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match=r"`drop_rate` must lie in \[0, 1\)"):
            load_arrays(x, y, seed=0, drop_rate=rate)
    with pytest.raises(TypeError, match="`drop_rate` must be a number"):
        load_arrays(x, y, seed=0, drop_rate=True)
    with pytest.raises(TypeError, match="`drop_seed` must be a non-negative integer"):
        load_uea("BasicMotions", drop_rate=0.5, drop_seed=-1)


def test_split_and_time_steps_reject_bad_times():
    series, stamps, labels = _irregular_collection()
    assert load_arrays(series, labels, seed=0).train.times is None
    split = load_arrays(series, labels, seed=0, times=stamps).train
    zero_padded = np.where(split.mask, split.times, 0.0)
    with pytest.raises(ValueError, match="strictly increasing along each series"):
        dataclasses.replace(split, times=zero_padded)
    # (A type error from jaxtyping when the runtime type checks are on.)
    with pytest.raises((TypeError, ValueError), match="times"):
        dataclasses.replace(split, times=split.times[:, :-1])
    with pytest.raises(ValueError, match="strictly increasing over the real steps"):
        time_steps(np.array([[0.0, 2.0, 1.0]]), np.array([[True, True, True]]))
    with pytest.raises(ValueError, match="prefix of each series"):
        time_steps(np.arange(3.0), np.array([True, False, True]))
    with pytest.raises((TypeError, ValueError), match="mask"):
        time_steps(np.arange(3.0), np.array([True, True]))
    with pytest.raises(
        ValueError, match="`first` must be a finite positive number or None"
    ):
        time_steps(np.arange(3.0), first=0.0)


def test_load_file_npz_round_trip(tmp_path):
    """`load_file` on an .npz equals `load_arrays` on the same arrays; masks become
    per-series lengths, times follow; bad files raise with what to do."""
    from lrc_toolkit.data import load_file

    rng = np.random.default_rng(0)
    N, T, C = 30, 12, 2
    x = rng.normal(size=(N, T, C)).astype(np.float32)
    y = rng.integers(0, 3, size=N)
    lengths = rng.integers(5, T + 1, size=N)
    mask = np.arange(T)[None, :] < lengths[:, None]
    times = np.cumsum(rng.uniform(0.5, 1.5, size=(N, T)), axis=1)
    path = tmp_path / "mine.npz"
    np.savez(path, x=x, y=y, mask=mask, times=times)
    ds = load_file(path, seed=3456)
    ref = load_arrays(
        [x[i, : lengths[i]] for i in range(N)],
        y,
        times=[times[i, : lengths[i]] for i in range(N)],
        seed=3456,
    )
    assert ds.name == "mine"
    for a, b in ((ds.train, ref.train), (ds.test, ref.test)):
        np.testing.assert_array_equal(a.x, b.x)
        np.testing.assert_array_equal(a.mask, b.mask)
        np.testing.assert_array_equal(a.times, b.times)
        np.testing.assert_array_equal(a.y, b.y)
    np.savez(tmp_path / "nox.npz", y=y)
    with pytest.raises(ValueError, match="no 'x'"):
        load_file(tmp_path / "nox.npz")
    np.savez(tmp_path / "flat.npz", x=x[..., 0], y=y)
    with pytest.raises(ValueError, match=r"x\[\.\.\., None\]"):
        load_file(tmp_path / "flat.npz")
    holes = mask.copy()
    holes[0, 0] = False
    np.savez(tmp_path / "holes.npz", x=x, y=y, mask=holes)
    with pytest.raises(ValueError, match="padding before real steps"):
        load_file(tmp_path / "holes.npz")
    with pytest.raises(ValueError, match="not a .npz"):
        load_file(tmp_path / "data.csv")
