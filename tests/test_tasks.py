"""Every task type from the CLI (issue 18, item 4): regression with targets per
series or per step, forecasting with built-in windows, MSE/MAE metrics and their
baselines, string class labels, and bad inputs refused before anything is written."""

import dataclasses
import json

import numpy as np
import pytest

from lrc_toolkit import baselines, cli
from lrc_toolkit.data import forecast_windows, load_arrays, load_file, split_sizes


TINY = ["--epochs", "1", "--hidden", "4", "--state", "4", "--blocks", "1"]
TINY += ["--solver", "sequential", "--no-progress", "--seeds", "2345"]


def _train(tmp_path, data, *args):
    out = tmp_path / "run"
    return out, cli.main(["train", "--out", str(out), "--data", str(data), *args])


@pytest.fixture
def series_data(tmp_path):
    """40 series (T = 20, 2 channels): 28/6/6 cases, so that the validation and
    test splits share one compiled evaluation step."""
    x = np.random.default_rng(0).normal(size=(40, 20, 2))
    return tmp_path, x


# ------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_regression_end_to_end(series_data, capsys):
    tmp_path, x = series_data
    path = tmp_path / "reg.npz"
    np.savez(path, x=x, y=x[:, :, 0].mean(axis=1))
    argv = ["--task", "regress", "--baseline", "minirocket", "--batch-size", "28"]
    out, rc = _train(tmp_path, path, *argv, *TINY)
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    results = json.loads((out / "results.json").read_text())
    assert results["task"] == "regression" and results["settings"]["readout"] == "mean"
    seed = results["per_seed"]["2345"]
    assert results["test_mse_mean"] == seed["test_mse"] > 0
    assert results["test_mae_mean"] == seed["test_mae"] > 0
    assert results["test_mse_std"] == 0.0 and "test_accuracy" not in results
    # The targets are standardised with the training split's statistics.
    ds = load_file(path, task="regression", seed=2345)
    mean, std = ds.train.y.mean(), ds.train.y.std()
    assert seed["target_mean"] == pytest.approx([mean], rel=1e-6)
    assert seed["target_std"] == pytest.approx([std], rel=1e-6)
    assert results["targets"] == "standardised"
    train, test = (
        dataclasses.replace(split, y=(split.y - mean) / std)
        for split in (ds.train, ds.test)
    )
    # The baseline beside it: aeon's MiniRocket regressor on the same split.
    expected = baselines.minirocket_regressor(train, test, seed=2345)
    assert results["minirocket"]["test_mse_mean"] == pytest.approx(
        expected["test_mse"], rel=1e-5
    )
    # The training mean is 0 after standardisation: its MSE is that of the targets.
    assert results["training_mean"]["test_mse_mean"] == pytest.approx(
        np.mean(test.y.astype(np.float64) ** 2), rel=1e-5
    )
    assert "test MSE" in captured.out and "| MiniRocket " in captured.out
    assert "| training mean " in captured.out
    assert "units of the training split's target std" in captured.out
    assert "No time stamps" in captured.out
    record = json.loads((out / "seed_2345" / "metrics.jsonl").read_text())
    assert {"train_mse", "val_mse", "val_mae"} <= set(record)
    assert (out / "training_curve.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow  # the fast tier runs the forecast end to end
def test_per_step_regression_end_to_end(series_data, capsys):
    from lrc_toolkit.training import load_checkpoint

    tmp_path, x = series_data
    path = tmp_path / "steps.npz"
    np.savez(path, x=x, y=np.cumsum(x[:, :, :1], axis=1))
    out, rc = _train(tmp_path, path, "--task", "regress", "--batch-size", "28", *TINY)
    assert rc == 0, capsys.readouterr().err
    model, _ = load_checkpoint(out / "seed_2345" / "best.eqx")
    assert model.readout == "per_step" and model.num_outputs == 1
    results = json.loads((out / "results.json").read_text())
    assert np.isfinite(results["test_mse_mean"])
    # Standardised over the real steps of the training split.
    ds = load_file(path, task="regression", seed=2345)
    values = ds.train.y[ds.train.mask]
    assert results["per_seed"]["2345"]["target_std"] == pytest.approx(
        [values.std()], rel=1e-5
    )


def test_forecast_end_to_end(tmp_path, capsys):
    t = np.arange(100)
    series = np.sin(2 * np.pi * t / 12) + 0.02 * t
    path = tmp_path / "series.npz"
    np.savez(path, x=series[:, None])  # one series (T, C), no y
    argv = ["--task", "forecast", "--horizon", "4", "--baseline", "naive"]
    argv += ["--season", "12", "--batch-size", "51"]
    out, rc = _train(tmp_path, path, *argv, *TINY)
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    results = json.loads((out / "results.json").read_text())
    assert results["task"] == "forecast" and results["settings"]["readout"] == "last"
    # The default window: 4 horizons (at most half of the 70 training steps).
    assert results["data_source"]["window"] == 16
    ds = forecast_windows(series, 4)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (51, 12, 12)
    naive = baselines.naive_forecast(ds.test)
    seasonal = baselines.naive_forecast(ds.test, season=12)
    assert results["naive"]["test_mse_mean"] == pytest.approx(naive["test_mse"])
    assert results["seasonal_naive"]["test_mae_mean"] == pytest.approx(
        seasonal["test_mae"]
    )
    assert seasonal["test_mse"] < 0.1 * naive["test_mse"]
    assert results["std"] == pytest.approx([series[:70].std()], rel=1e-6)
    assert "seasonal naive" in captured.out and "test MAE" in captured.out


# ----------------------------------------------------------------- the windows


def _loop_windows(series, horizon, window, fractions=(0.7, 0.15, 0.15)):
    """Forecasting windows by a plain loop over every start and every step."""
    parts = {"train": ([], [], []), "val": ([], [], []), "test": ([], [], [])}
    longest = max(len(s) for s in series)
    train_steps = []
    for s in series:
        n1, n2, _ = split_sizes(len(s), fractions)
        train_steps += list(s[:n1])
    mean = np.mean(train_steps, axis=0)
    std = np.std(train_steps, axis=0)
    for n, s in enumerate(series):
        T = len(s)
        n1, n2, _ = split_sizes(T, fractions)
        b1, b2 = n1, n1 + n2
        for start in range(T - window - horizon + 1):
            first_target = start + window
            last_step = start + window + horizon - 1
            if last_step < b1:
                part = "train"
            elif b1 <= first_target and last_step < b2:
                part = "val"
            elif b2 <= first_target:
                part = "test"
            else:
                continue  # straddles a cut: in no split
            xs, ys, idx = parts[part]
            xs.append([(s[k] - mean) / std for k in range(start, first_target)])
            ys.append(
                [
                    (s[k][c] - mean[c]) / std[c]
                    for k in range(first_target, last_step + 1)
                    for c in range(s.shape[1])
                ]
            )
            idx.append(n * longest + start)
    return parts, mean, std


@pytest.mark.parametrize("lengths", [(60,), (60, 60), (45, 70)])
def test_windows_match_a_plain_loop(lengths):
    rng = np.random.default_rng(1)
    series = [rng.normal(size=(T, 3)) * [1, 5, 0.1] + [0, 2, -3] for T in lengths]
    given = series[0] if len(series) == 1 else series
    ds = forecast_windows(given, 3, 7)
    parts, mean, std = _loop_windows(series, 3, 7)
    np.testing.assert_allclose(ds.mean, mean, rtol=1e-6)
    np.testing.assert_allclose(ds.std, std, rtol=1e-6)
    for name, split in ds.splits.items():
        xs, ys, idx = parts[name]
        np.testing.assert_allclose(split.x, np.asarray(xs), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(split.y, np.asarray(ys), rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(split.indices, idx)
        assert split.mask.all() and (split.lengths == 7).all()


def test_windows_never_reach_into_a_later_split():
    ds = forecast_windows(np.arange(200.0), horizon=5, window=20)
    b1, b2 = 140, 170
    train_end = ds.train.indices + 20 + 5  # one past each window's last step
    assert train_end.max() == b1
    assert (ds.val.indices + 20).min() == b1 and (ds.val.indices + 25).max() == b2
    assert (ds.test.indices + 20).min() == b2
    assert (ds.test.indices + 25).max() == 200


def test_relative_windows_shift_by_the_last_value():
    series = np.cumsum(np.random.default_rng(7).normal(size=(80, 2)), axis=0)
    plain, rel = (
        forecast_windows(series, 4, 8),
        forecast_windows(series, 4, 8, relative=True),
    )
    for a, b in zip(plain.splits.values(), rel.splits.values()):
        last = a.x[:, -1, :]
        np.testing.assert_allclose(b.x, a.x - last[:, None, :], atol=1e-6)
        np.testing.assert_allclose(b.y, a.y - np.tile(last, 4), atol=1e-6)
        for season in (None, 4):  # the baselines' errors do not change
            assert baselines.naive_forecast(b, season=season)["test_mse"] == (
                pytest.approx(baselines.naive_forecast(a, season=season)["test_mse"])
            )


# ------------------------------------------------------------------ baselines


def test_naive_forecasts_by_hand():
    class Split:
        x = np.array([[1.0, 2, 3, 4, 5, 6]])[:, :, None]
        y = np.array([[7.0, 8, 9, 10]])
        mask = None

    np.testing.assert_array_equal(baselines.naive_forecasts(Split), [[6, 6, 6, 6]])
    # m = 3: steps t+1, t+2, t+3 repeat the last season (4, 5, 6), then again.
    np.testing.assert_array_equal(
        baselines.naive_forecasts(Split, season=3), [[4, 5, 6, 4]]
    )
    scores = baselines.naive_forecast(Split, season=3)
    assert scores["test_mse"] == pytest.approx((9 + 9 + 9 + 36) / 4)
    assert scores["test_mae"] == pytest.approx((3 + 3 + 3 + 6) / 4)
    with pytest.raises(ValueError, match="at least one season long"):
        baselines.naive_forecasts(Split, season=7)


def test_naive_forecasts_of_several_channels_and_padding():
    class Split:  # two channels, the second window has 3 real steps of 4
        x = np.array(
            [
                [[1.0, 10], [2, 20], [3, 30], [4, 40]],
                [[5, 50], [6, 60], [7, 70], [0, 0]],
            ]
        )
        mask = np.array([[True] * 4, [True] * 3 + [False]])
        y = np.zeros((2, 2 * 2))

    # Flattened time-major: (step 1: c0, c1), (step 2: c0, c1).
    np.testing.assert_array_equal(
        baselines.naive_forecasts(Split), [[4, 40, 4, 40], [7, 70, 7, 70]]
    )
    np.testing.assert_array_equal(
        baselines.naive_forecasts(Split, season=2), [[3, 30, 4, 40], [6, 60, 7, 70]]
    )


def test_training_mean_by_hand():
    class Train:
        y = np.array([[[1.0], [3.0], [99.0]], [[5.0], [7.0], [9.0]]])
        mask = np.array([[True, True, False], [True, True, True]])

    class Test:
        y = np.array([[[2.0], [0.0], [0.0]]])
        mask = np.array([[True, False, False]])

    # The mean over the real training steps is (1 + 3 + 5 + 7 + 9) / 5 = 5.
    scores = baselines.training_mean(Train, Test, val=Train)
    assert scores["test_mse"] == 9.0 and scores["test_mae"] == 3.0
    assert scores["val_mae"] == pytest.approx((4 + 2 + 0 + 2 + 4) / 5)


def test_minirocket_regressor_fits_one_regressor_per_output():
    from aeon.regression.convolution_based import MiniRocketRegressor

    rng = np.random.default_rng(2)
    x = rng.normal(size=(30, 16, 2))
    y = np.stack([x[:, :, 0].mean(1), x[:, :, 1].max(1)], axis=1)
    ds = load_arrays(x, y, task="regression")
    result = baselines.minirocket_regressor(ds.train, ds.test, seed=3)
    series = np.transpose(ds.train.x, (0, 2, 1)).astype(np.float64)
    test = np.transpose(ds.test.x, (0, 2, 1)).astype(np.float64)
    prediction = np.stack(
        [
            MiniRocketRegressor(random_state=3)
            .fit(series, ds.train.y[:, k])
            # aeon's own regressor, one output at a time
            .predict(test)
            for k in range(2)
        ],
        axis=1,
    )
    assert result["test_mse"] == pytest.approx(np.mean((prediction - ds.test.y) ** 2))


# ----------------------------------------------------------- per-step targets


def test_per_step_targets_follow_their_series():
    """Through deduplication, permutation, the random drop and the padding."""
    rng = np.random.default_rng(3)
    x = [rng.normal(size=(int(rng.integers(6, 15)), 2)) for _ in range(25)]
    x.append(x[4].copy())  # a duplicate, dropped with its targets
    y = [2 * s[:, :1] + 1 for s in x]
    ds = load_arrays(x, y, task="regression", drop_rate=0.3, normalise=False)
    assert ds.num_duplicates == 1
    for split in ds.splits.values():
        assert split.y.shape == split.x.shape[:2] + (1,)
        m = split.mask
        np.testing.assert_allclose(
            split.y[m][:, 0], 2 * split.x[m][:, 0] + 1, atol=1e-6
        )
        assert (split.y[~m] == 0).all()


def test_per_step_targets_from_a_file_are_cut_by_the_mask(tmp_path):
    x = np.random.default_rng(4).normal(size=(12, 9, 1))
    mask = np.arange(9)[None, :] < np.array([9, 5, 7] * 4)[:, None]
    path = tmp_path / "d.npz"
    np.savez(path, x=x, y=3 * x, mask=mask)
    ds = load_file(path, task="regression", normalise=False)
    for split in ds.splits.values():
        np.testing.assert_allclose(
            split.y[split.mask], 3 * split.x[split.mask], atol=1e-6
        )


# -------------------------------------------------------------- string labels


def _fake_fit(monkeypatch):
    """`fit` replaced by a stub (the printing and storing are under test, not the
    training)."""
    import lrc_toolkit.training as training
    from lrc_toolkit.training import FitResult

    def fit(model, train, val, test, **kwargs):
        record = {"epoch": 1, "train_loss": 0.7, "val_loss": 0.7}
        record |= {"train_accuracy": 0.5, "val_accuracy": 0.5}
        metrics = {"loss": 0.7, "accuracy": 0.5}
        return FitResult(model, model, 1, metrics, metrics, [record], 1, "max_epochs")

    monkeypatch.setattr(training, "fit", fit)


def test_string_labels_printed_and_stored(tmp_path, monkeypatch, capsys):
    _fake_fit(monkeypatch)
    x = np.random.default_rng(5).normal(size=(20, 8, 2))
    times = np.cumsum(np.random.default_rng(6).uniform(0.5, 1.5, size=(20, 8)), 1)
    path = tmp_path / "labels.npz"
    np.savez(path, x=x, y=np.array(["walk", "run"] * 10), times=times)
    out, rc = _train(tmp_path, path, *TINY)
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "classes: 0 = 'run', 1 = 'walk'" in captured.err
    assert "time stamps used" in captured.err
    results = json.loads((out / "results.json").read_text())
    assert results["classes"] == ["run", "walk"]
    assert results["time_stamps_in_data"] and results["time_stamps_used"]
    out2 = tmp_path / "blind"
    argv = ["train", "--out", str(out2), "--data", str(path), "--dt-blind", *TINY]
    assert cli.main(argv) == 0
    assert "Time stamps ignored (--dt-blind" in capsys.readouterr().out
    assert not json.loads((out2 / "results.json").read_text())["time_stamps_used"]


# ----------------------------------------------------------------- bad inputs


def _with_nan(x):
    y = x[:, :, 0].mean(axis=1)
    y[7] = np.nan
    return y


def _with_inf(x):
    y = np.stack([x[:, 0, 0], x[:, 1, 1]], axis=1)
    y[3, 1] = np.inf
    return y


BAD = [
    (
        _with_nan,
        ["--task", "regress"],
        "targets of 1 of 40 cases contain NaN or infinite",
    ),
    (
        _with_inf,
        ["--task", "regress"],
        "targets of 1 of 40 cases contain NaN or infinite",
    ),
    (
        lambda x: np.cumsum(x[:, :-1, :1], axis=1),
        ["--task", "regress"],
        "have 19 steps but the series has 20",
    ),
    (
        lambda x: np.cumsum(x[:, :, :1], axis=1),
        ["--task", "regress", "--readout", "last"],
        "the targets are per step",
    ),
    (
        lambda x: x[:, 0, 0],
        ["--task", "regress", "--baseline", "naive"],
        "--baseline naive is a forecasting baseline",
    ),
    (
        lambda x: np.cumsum(x[:, :, :1], axis=1),
        ["--task", "regress", "--baseline", "minirocket"],
        "predicts one target per series; the targets here are per step",
    ),
    (
        None,
        ["--task", "forecast", "--horizon", "2", "--baseline", "naive"]
        + ["--season", "9", "--window", "8"],
        "--season 9: the seasonal naive forecast looks back one season",
    ),
    (None, ["--task", "forecast", "--horizon", "20"], "horizon 20 is not shorter"),
    (None, ["--task", "forecast", "--horizon", "25"], "horizon 25 is not shorter"),
    (
        None,
        ["--task", "forecast", "--horizon", "5", "--window", "16"],
        "(21 steps) is longer than the series 0 (20 steps)",
    ),
    (None, ["--task", "forecast"], "--task forecast needs --horizon"),
    (
        None,
        ["--task", "forecast", "--horizon", "2", "--raw-targets"],
        "--raw-targets is an option of --task regress",
    ),
    (
        None,
        ["--task", "forecast", "--horizon", "2", "--baseline", "minirocket"],
        "compared with --baseline naive",
    ),
    (lambda x: x[:, 0, 0], ["--horizon", "3"], "--horizon is an option of --task"),
    (
        lambda x: x[:, 0, 0],
        ["--task", "classify"],
        "look like regression targets. Pass `task='regression'`, or integer/string "
        "class labels. On the command line: --task regress.",
    ),
]


@pytest.mark.parametrize("targets, args, message", BAD)
def test_bad_inputs_write_nothing(series_data, targets, args, message, capsys):
    tmp_path, x = series_data
    path = tmp_path / "bad.npz"
    if targets is None:
        np.savez(path, x=x)
    else:
        np.savez(path, x=x, y=targets(x))
    out, rc = _train(tmp_path, path, *args, *TINY)
    assert rc == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_a_nan_in_a_series_to_forecast(tmp_path, capsys):
    series = np.sin(np.arange(50.0))
    series[30] = np.nan
    path = tmp_path / "s.npz"
    np.savez(path, x=series)
    out, rc = _train(tmp_path, path, "--task", "forecast", "--horizon", "3", *TINY)
    assert rc == 2 and "1 steps with NaN or infinite values" in capsys.readouterr().err
    assert not out.exists()


def test_uea_data_sets_are_for_classification(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "--out", str(out), "--task", "regress", *TINY]) == 2
    assert "needs your own data: --data FILE.npz" in capsys.readouterr().err
    assert not out.exists()


def test_library_errors():
    with pytest.raises(ValueError, match="horizon 10 is not shorter"):
        forecast_windows(np.zeros(10), 10)
    with pytest.raises(ValueError, match="val part of series 0"):
        forecast_windows(np.zeros(30), 5, 2)  # 4 validation steps < 5
    with pytest.raises(ValueError, match="NaN or infinite"):
        load_arrays(np.zeros((9, 4, 1)), [1.0] * 8 + [np.nan], task="regression")
    x = [np.zeros((5, 1)), np.zeros((4, 1)), np.zeros((6, 1))]
    with pytest.raises(ValueError, match="series 1 have 5 steps but the series has 4"):
        load_arrays(x, [np.zeros((5, 1))] * 3, task="regression")
