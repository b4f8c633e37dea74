import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import types

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

import lrc_toolkit as lt
from lrc_toolkit.models import LrcSSM
from lrc_toolkit.training import (
    _checkpoint,
    _run_dir,
    CheckpointError,
    DEFAULT_PRESET,
    EarlyStopping,
    evaluate,
    fit,
    load_checkpoint,
    make_optimiser,
    PRESETS,
    read_checkpoint,
    TrainConfig,
)


# One tiny setup shared by the in-process tests, so that the train step compiles
# once: 3 channels, 3 classes, sequences of length <= 12 (variable, masked).
P, C, T = 3, 3, 12
CONFIG = TrainConfig(
    epochs=3, batch_size=8, learning_rate=1e-2, patience=5, seed=7, clip_norm=0.05
)


def _split(n, seed, *, variable=True):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, C, n).astype(np.int32)
    x = rng.normal(size=(n, T, P)).astype(np.float32) * 0.5
    x[:, :, 0] += y[:, None] - 1
    lengths = rng.integers(4, T + 1, n) if variable else np.full(n, T)
    mask = np.arange(T)[None] < lengths[:, None]
    x[~mask] = 0
    return types.SimpleNamespace(x=x, y=y, mask=mask)


TRAIN, VAL, TEST = _split(20, 0), _split(8, 1), _split(8, 2)


def _bad(split, **changes):
    d = {"x": split.x.copy(), "y": split.y.copy(), "mask": split.mask.copy()}
    d.update(changes)
    return types.SimpleNamespace(**d)


def _model(solver=lt.ParallelNewton(), key=0, **kw):
    return LrcSSM(
        P,
        C,
        hidden_size=6,
        state_size=4,
        num_blocks=1,
        solver=solver,
        dtype=jnp.float32,
        key=jr.key(key),
        **kw,
    )


def _assert_same_leaves(a, b):
    la = jax.tree.leaves(eqx.filter(a, eqx.is_array))
    lb = jax.tree.leaves(eqx.filter(b, eqx.is_array))
    assert len(la) == len(lb)
    assert all(np.array_equal(x, y) for x, y in zip(la, lb))


def _without_times(state):
    return {
        **state,
        "history": [
            {k: v for k, v in h.items() if k != "seconds"} for h in state["history"]
        ],
    }


def _assert_same_run(dir_a, dir_b):
    """The two runs' final checkpoints hold bit-identical parameters, optimiser
    states and best models, and the same counters and history."""
    meta_a, payload_a = read_checkpoint(os.path.join(dir_a, "last.eqx"))
    meta_b, payload_b = read_checkpoint(os.path.join(dir_b, "last.eqx"))
    assert payload_a == payload_b
    assert _without_times(meta_a["state"]) == _without_times(meta_b["state"])


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """An uninterrupted run of CONFIG, written to disk."""
    out = tmp_path_factory.mktemp("reference") / "run"
    result = fit(_model(), TRAIN, VAL, TEST, config=CONFIG, out_dir=out, progress=False)
    return out, result


# ------------------------------------------------------------------- correctness


@pytest.mark.slow
def test_first_losses_parallel_equal_sequential(reference_run):
    _, parallel = reference_run
    sequential = fit(
        _model(lt.Sequential()), TRAIN, VAL, TEST, config=CONFIG, progress=False
    )
    for p, s in zip(parallel.history, sequential.history):
        for k in ("train_loss", "val_loss"):
            np.testing.assert_allclose(p[k], s[k], rtol=1e-4)
    pa = jax.tree.leaves(eqx.filter(parallel.last_model, eqx.is_array))
    sa = jax.tree.leaves(eqx.filter(sequential.last_model, eqx.is_array))
    for a, b in zip(pa, sa):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


@eqx.filter_jit
def _one(model, x, mask):
    return model(x, mask)


def test_evaluate_against_plain_loop(reference_run):
    """evaluate's batching (with a padded last batch) and aggregation against a
    plain loop over the sequences one by one."""
    _, result = reference_run
    model = result.model
    metrics = evaluate(model, TEST, batch_size=3)  # 8 = 3 + 3 + 2 (padded batch)
    logits = np.stack(
        [np.asarray(_one(model, x, m), np.float64) for x, m in zip(TEST.x, TEST.mask)]
    )
    logp = logits - np.log(np.sum(np.exp(logits), axis=1, keepdims=True))
    loss = -np.mean(logp[np.arange(len(TEST.y)), TEST.y])
    accuracy = np.mean(np.argmax(logits, axis=1) == TEST.y)
    assert metrics["num_examples"] == 8
    np.testing.assert_allclose(metrics["loss"], loss, rtol=1e-5)
    assert metrics["accuracy"] == accuracy


def test_outputs_on_disk(reference_run):
    out, result = reference_run
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == result.history
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    config = json.loads((out / "config.json").read_text())
    assert config["train_config"] == CONFIG.to_dict()
    best, meta = load_checkpoint(out / "best.eqx")
    _assert_same_leaves(best, result.model)
    assert meta["epoch"] == result.best_epoch
    assert meta["test_metrics"] == result.test_metrics
    # The test metrics are those of the best-validation model.
    assert evaluate(best, TEST) == result.test_metrics
    assert evaluate(best, VAL) == result.val_metrics
    best_val = max(result.history, key=lambda h: (h["val_accuracy"], -h["val_loss"]))
    assert best_val["epoch"] == result.best_epoch
    # The best model is also inside last.eqx, and loads without a template.
    from_last, _ = load_checkpoint(out / "last.eqx")
    _assert_same_leaves(from_last, result.model)


def test_deterministic(reference_run):
    _, result = reference_run
    again = fit(_model(), TRAIN, VAL, TEST, config=CONFIG, progress=False)
    _assert_same_leaves(again.last_model, result.last_model)
    assert [h["train_loss"] for h in again.history] == [
        h["train_loss"] for h in result.history
    ]


def test_early_stopping(tmp_path):
    config = TrainConfig(epochs=50, batch_size=8, learning_rate=1e-9, patience=2)
    result = fit(_model(), TRAIN, VAL, config=config, progress=False)
    # A vanishing learning rate hardly moves the model: val stops improving.
    assert result.stop_reason == "early_stopping"
    assert result.epochs_run == result.best_epoch + 2 < 50
    assert result.test_metrics is None


@pytest.mark.slow
def test_regression():
    rng = np.random.default_rng(3)
    per_seq = _bad(TRAIN, y=rng.normal(size=(20, 2)).astype(np.float32))
    per_step = _bad(TRAIN, y=rng.normal(size=(20, T, 2)).astype(np.float32))
    model = LrcSSM(
        P,
        2,
        hidden_size=6,
        state_size=4,
        num_blocks=1,
        solver=lt.Sequential(),
        task="regression",
        dtype=jnp.float32,
        key=jr.key(1),
    )
    config = TrainConfig(epochs=2, batch_size=8, learning_rate=1e-2)
    for data in (per_seq, per_step):
        result = fit(model, data, data, config=config, progress=False)
        losses = [h["train_loss"] for h in result.history]
        assert losses[1] < losses[0]
        # Reference: the MSE of a plain loop over the sequences' valid steps.
        errors = []
        for x, m, y in zip(data.x, data.mask, data.y):
            out = np.asarray(_one(result.model, x, m), np.float64)[m]
            errors.append(
                np.mean((out.mean(0) - y) ** 2)
                if y.ndim == 1
                else np.mean((out - y[m]) ** 2)
            )
        metrics = evaluate(result.model, data)
        np.testing.assert_allclose(metrics["mse"], np.mean(errors), rtol=1e-5)
    with pytest.raises(ValueError, match=r"float targets of shape \(20, 2\)"):
        fit(model, _bad(TRAIN, y=TRAIN.y), VAL, config=config)


# ------------------------------------------------------------ resume and crashes


def test_resume_in_process(reference_run, tmp_path):
    ref_dir, _ = reference_run
    out = tmp_path / "run"
    fit(
        _model(),
        TRAIN,
        VAL,
        TEST,
        config=TrainConfig(**{**CONFIG.to_dict(), "epochs": 1}),
        out_dir=out,
        progress=False,
    )
    resumed = fit(
        _model(key=99),  # replaced by the checkpoint's parameters
        TRAIN,
        VAL,
        TEST,
        config=CONFIG,
        out_dir=out,
        resume=True,
        progress=False,
    )
    assert resumed.epochs_run == CONFIG.epochs
    _assert_same_run(ref_dir, out)
    # Resuming a finished run trains nothing and returns the same result.
    again = fit(
        _model(),
        TRAIN,
        VAL,
        TEST,
        config=CONFIG,
        out_dir=out,
        resume=True,
        progress=False,
    )
    assert again.history == resumed.history
    _assert_same_leaves(again.model, resumed.model)


def test_crash_between_rotation_renames(reference_run, tmp_path, monkeypatch):
    """A crash after last.eqx was moved to prev.eqx and before the new one was moved
    in: resume continues from prev.eqx and ends identical."""
    ref_dir, _ = reference_run
    out = tmp_path / "run"

    class Crash(BaseException):
        pass

    def hook(path, stage):
        if stage == "rotated" and path.endswith("last.eqx"):
            raise Crash

    monkeypatch.setattr(_checkpoint, "_crash_test_hook", hook)
    with pytest.raises(Crash):
        fit(_model(), TRAIN, VAL, TEST, config=CONFIG, out_dir=out, progress=False)
    monkeypatch.setattr(_checkpoint, "_crash_test_hook", None)
    assert not (out / "last.eqx").exists()
    meta, _ = read_checkpoint(out / "prev.eqx")
    assert meta["state"]["epoch"] == 1
    fit(
        _model(),
        TRAIN,
        VAL,
        TEST,
        config=CONFIG,
        out_dir=out,
        resume=True,
        progress=False,
    )
    _assert_same_run(ref_dir, out)


def test_corrupted_checkpoint(reference_run, tmp_path):
    ref_dir, _ = reference_run
    out = tmp_path / "run"
    fit(_model(), TRAIN, VAL, TEST, config=CONFIG, out_dir=out, progress=False)
    last, prev = out / "last.eqx", out / "prev.eqx"
    good_prev = prev.read_bytes()
    data = last.read_bytes()
    for name, bad in (
        ("truncated", data[: len(data) // 2]),
        ("bit flip", data[:200] + bytes([data[200] ^ 1]) + data[201:]),
        ("no checksum", data[:-32]),
    ):
        last.write_bytes(bad)
        with pytest.raises(CheckpointError, match=r"last\.eqx.*truncated or corrupted"):
            load_checkpoint(last)
        assert prev.read_bytes() == good_prev, name
        load_checkpoint(prev)  # the previous good checkpoint still loads
    last.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match=r"last\.eqx.*not an lrc_toolkit"):
        load_checkpoint(last)
    with pytest.raises(CheckpointError, match=r"missing\.eqx.*does not exist"):
        load_checkpoint(out / "missing.eqx")
    # Resuming falls back to prev.eqx (epoch 2 of 3), keeps the bad file aside, and
    # ends exactly where the uninterrupted run did.
    last.write_bytes(data[: len(data) // 2])
    with pytest.warns(UserWarning, match=r"last\.eqx.*Resuming from the previous"):
        fit(
            _model(),
            TRAIN,
            VAL,
            TEST,
            config=CONFIG,
            out_dir=out,
            resume=True,
            progress=False,
        )
    assert (out / "last.eqx.corrupt").read_bytes() == data[: len(data) // 2]
    _assert_same_run(ref_dir, out)
    # Both checkpoints unreadable: a clear error naming both, nothing overwritten.
    last.write_bytes(b"x" * 100)
    prev.write_bytes(b"y" * 100)
    with (
        pytest.warns(UserWarning, match=r"last\.eqx"),
        pytest.raises(CheckpointError, match=r"No readable checkpoint.*prev\.eqx"),
    ):
        fit(
            _model(),
            TRAIN,
            VAL,
            TEST,
            config=CONFIG,
            out_dir=out,
            resume=True,
            progress=False,
        )
    assert prev.read_bytes() == b"y" * 100


def test_checkpoint_of_other_structure(reference_run):
    out, _ = reference_run
    wrong = LrcSSM(
        P,
        C,
        hidden_size=8,
        state_size=4,
        num_blocks=1,
        dtype=jnp.float32,
        key=jr.key(0),
    )
    with pytest.raises(CheckpointError, match=r"best\.eqx.*does not match"):
        load_checkpoint(out / "best.eqx", like=wrong)


_WORKER = textwrap.dedent(
    """
    import os, sys, time, types
    import numpy as np
    import jax.numpy as jnp, jax.random as jr
    import lrc_toolkit as lt
    from lrc_toolkit.models import LrcSSM
    from lrc_toolkit.training import fit, TrainConfig
    from lrc_toolkit.training import _checkpoint, _run_dir

    out, mode, kill_epoch, resume = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
    marker = out + ".killpoint"

    def stop_here():
        open(marker, "w").close()
        time.sleep(600)

    if mode == "between-epochs":
        save = _run_dir.save_checkpoint
        def slow_save(path, tree, meta, **kw):
            save(path, tree, meta, **kw)
            if path.endswith("last.eqx") and meta["state"]["epoch"] == kill_epoch:
                stop_here()
        _run_dir.save_checkpoint = slow_save
    elif mode == "mid-write":
        writes = []
        def hook(path, stage):
            if stage == "partial" and path.endswith("last.eqx"):
                writes.append(path)
                if len(writes) == kill_epoch:
                    stop_here()
        _checkpoint._crash_test_hook = hook

    def split(n, seed):
        rng = np.random.default_rng(seed)
        y = rng.integers(0, 3, n).astype(np.int32)
        x = (rng.normal(size=(n, 10, 3)) + y[:, None, None]).astype(np.float32)
        return types.SimpleNamespace(x=x, y=y, mask=None)

    model = LrcSSM(3, 3, hidden_size=6, state_size=4, num_blocks=1,
                   solver=lt.Sequential(), dtype=jnp.float32, key=jr.key(0))
    config = TrainConfig(epochs=4, batch_size=4, learning_rate=1e-2, seed=1)
    fit(model, split(12, 0), split(6, 1), split(6, 2), config=config, out_dir=out,
        resume=resume, progress=False)
    """
)


def _worker(tmp_path, out, mode="none", kill_epoch=0, resume=False):
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    env = {
        **os.environ,
        "JAX_ENABLE_X64": "0",
        "JAX_COMPILATION_CACHE_DIR": str(tmp_path.parent / "jax-cache"),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    }
    args = [sys.executable, str(script), str(out), mode, str(kill_epoch)]
    return subprocess.Popen(
        [*args, "1" if resume else "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _finish(proc):
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output.decode()


def _kill_at_marker(proc, out):
    marker = f"{out}.killpoint"
    deadline = time.monotonic() + 300
    while not os.path.exists(marker):
        if proc.poll() is not None:
            pytest.fail(f"worker ended early: {proc.communicate()[0].decode()}")
        assert time.monotonic() < deadline, "worker never reached the kill point"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    os.unlink(marker)


@pytest.fixture(scope="module")
def reference_subprocess_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("subprocess")
    out = tmp / "reference"
    _finish(_worker(tmp, out))
    return out


@pytest.mark.slow
def test_sigkill_between_epochs_then_resume(reference_subprocess_run, tmp_path):
    out = tmp_path / "run"
    _kill_at_marker(_worker(tmp_path, out, "between-epochs", kill_epoch=2), out)
    meta, _ = read_checkpoint(out / "last.eqx")
    assert meta["state"]["epoch"] == 2
    _finish(_worker(tmp_path, out, resume=True))
    _assert_same_run(reference_subprocess_run, out)
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3, 4]


@pytest.mark.slow
def test_sigkill_while_writing_checkpoint(reference_subprocess_run, tmp_path):
    out = tmp_path / "run"
    # Killed half-way through writing epoch 3's checkpoint.
    _kill_at_marker(_worker(tmp_path, out, "mid-write", kill_epoch=3), out)
    partial = [f for f in os.listdir(out) if f.endswith(".tmp")]
    assert len(partial) == 1 and partial[0].startswith("last.eqx.")
    # The last good checkpoint is intact: only the interrupted epoch is lost.
    meta, _ = read_checkpoint(out / "last.eqx")
    assert meta["state"]["epoch"] == 2
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]
    _finish(_worker(tmp_path, out, resume=True))
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")]
    _assert_same_run(reference_subprocess_run, out)
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3, 4]


# -------------------------------------------------------------- hostile inputs


@pytest.mark.parametrize(
    "train, match",
    [
        (_bad(TRAIN, y=TRAIN.y + 1), r"labels in \[1, 3\].*num_outputs=3"),
        (_bad(TRAIN, y=TRAIN.y - 1), r"labels in \[-1, 1\]"),
        (_bad(TRAIN, y=TRAIN.y.astype(np.float32)), "integer class label"),
        (_bad(TRAIN, x=TRAIN.x[:, :, :2]), r"input_size=3"),
        (_bad(TRAIN, x=TRAIN.x.astype(np.int32)), "floating"),
        (_bad(TRAIN, mask=TRAIN.mask[:, ::-1].copy()), "prefix"),
        (_bad(TRAIN, mask=np.zeros_like(TRAIN.mask)), "no valid step"),
        (types.SimpleNamespace(x=TRAIN.x), "has no `y`"),
    ],
)
def test_bad_data(train, match, tmp_path):
    out = tmp_path / "never"
    with pytest.raises((ValueError, TypeError), match=match):
        fit(_model(), train, VAL, config=CONFIG, out_dir=out, progress=False)
    assert not out.exists()  # nothing written: the check precedes everything


def test_nans_in_data(tmp_path):
    x = TRAIN.x.copy()
    x[3, 1, 2] = np.nan
    x[5, 0, 0] = np.inf
    with pytest.raises(ValueError, match=r"`train.x` contains 2 NaN.*rows \[3, 5\]"):
        fit(_model(), _bad(TRAIN, x=x), VAL, config=CONFIG, out_dir=tmp_path / "o")
    # NaN in the padding is harmless (it is masked) and accepted.
    x = TEST.x.copy()
    n = int(TEST.mask[0].sum())
    if n < T:
        x[0, n:] = np.nan
        evaluate(_model(), _bad(TEST, x=x))


def test_unwritable_output_dir(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(ValueError, match=r"Cannot create the output directory"):
        fit(_model(), TRAIN, VAL, config=CONFIG, out_dir=blocker / "run")
    with pytest.raises(ValueError, match=r"exists and is not a directory"):
        fit(_model(), TRAIN, VAL, config=CONFIG, out_dir=blocker)


def test_existing_run_and_resume_mismatch(reference_run):
    out, _ = reference_run
    with pytest.raises(ValueError, match=r"already holds a training run"):
        fit(_model(), TRAIN, VAL, config=CONFIG, out_dir=out)
    other = TrainConfig(**{**CONFIG.to_dict(), "learning_rate": 0.5})
    with pytest.raises(ValueError, match=r"learning_rate \(saved 0.01, now 0.5\)"):
        fit(_model(), TRAIN, VAL, config=other, out_dir=out, resume=True)
    with pytest.raises(ValueError, match="needs the `out_dir`"):
        fit(_model(), TRAIN, VAL, config=CONFIG, resume=True)


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("epochs", 0, "`epochs` must be a positive integer"),
        ("batch_size", 2.5, "batch_size"),
        ("learning_rate", -1.0, "`learning_rate` must be a finite positive"),
        ("learning_rate", float("nan"), "`learning_rate` must be a finite positive"),
        ("patience", 0, "`patience`"),
        ("seed", -3, "`seed`"),
        ("clip_norm", 0.0, "`clip_norm`"),
        ("perfect_patience", -1, "`perfect_patience` must be a non-negative integer"),
        ("time_budget", 0, "`time_budget` must be a finite positive"),
        ("time_budget", float("inf"), "`time_budget` must be a finite positive"),
        ("schedule", "linear", "`schedule` must be one of"),
        ("warmup_epochs", -1, "`warmup_epochs` must be a non-negative integer"),
        ("weight_decay", -0.1, "`weight_decay` must be a finite number >= 0"),
        ("weight_decay", float("nan"), "`weight_decay` must be a finite number"),
    ],
)
def test_bad_config(field, value, match):
    # (A float for an int field is a TypeError from the runtime type checker.)
    with pytest.raises((ValueError, TypeError), match=match):
        TrainConfig(**{field: value})


# ------------------------------------------------------- the stopping rules


def _run_rule(rule, curve, losses=None):
    """Feed a scripted validation curve to a rule; return the improving epochs and
    the epoch and reason it stops at (or None)."""
    state, improved_at = rule.init(), []
    for epoch, acc in enumerate(curve, start=1):
        loss = 1.0 if losses is None else losses[epoch - 1]
        state, improved = rule.update(state, {"accuracy": acc, "loss": loss})
        json.dumps(state)  # lives in the checkpoint
        if improved:
            improved_at.append(epoch)
        if (reason := rule.stop_reason(state)) is not None:
            return improved_at, epoch, reason
    return improved_at, None, None


CURVE = [0.5, 0.7, 0.7, 0.6, 0.7, 0.5, 0.6, 0.6, 0.8, 0.4]


def test_stopping_rule_paper_ties():
    # Ties (>= best) improve: the last best epoch is 5; 3 epochs without reaching
    # 0.7 follow (6, 7, 8): stop at 8, before the 0.8 of epoch 9.
    rule = EarlyStopping(patience=3, ties_improve=True, perfect_patience=None)
    assert _run_rule(rule, CURVE) == ([1, 2, 3, 5], 8, "early_stopping")
    rule = EarlyStopping(patience=4, ties_improve=True, perfect_patience=None)
    assert _run_rule(rule, CURVE) == ([1, 2, 3, 5, 9], None, None)
    # The loss plays no part in the paper's rule.
    losses = [1.0, 0.1, 0.9, 0.1, 0.9, 0.1, 0.1, 0.1, 0.1, 0.1]
    rule = EarlyStopping(patience=3, ties_improve=True, perfect_patience=None)
    assert _run_rule(rule, CURVE, losses) == ([1, 2, 3, 5], 8, "early_stopping")


def test_stopping_rule_fast():
    # Strictly better only; equal accuracy improves only with a lower loss.
    rule = EarlyStopping(patience=3, perfect_patience=None)
    assert _run_rule(rule, CURVE) == ([1, 2], 5, "early_stopping")
    losses = [1.0, 0.9, 0.8, 0.1, 0.9, 1.0, 1.0, 1.0, 1.0, 1.0]
    assert _run_rule(rule, CURVE, losses) == ([1, 2, 3], 6, "early_stopping")
    # Without an accuracy, the loss decides.
    state = rule.init()
    for loss, expected in ((1.0, True), (0.5, True), (0.5, False), (0.7, False)):
        state, improved = rule.update(state, {"loss": loss})
        assert improved == expected
    assert rule.stop_reason(state) is None


def test_stopping_rule_perfect_validation():
    curve = [0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    losses = [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3]
    rule = EarlyStopping(patience=20, perfect_patience=2)
    # Perfect at epoch 2; two more epochs (3, 4) improve the loss, then stop.
    assert _run_rule(rule, curve, losses) == ([1, 2, 3, 4], 4, "perfect_validation")
    rule = EarlyStopping(patience=20, perfect_patience=0)
    assert _run_rule(rule, curve, losses) == ([1, 2], 2, "perfect_validation")
    rule = EarlyStopping(patience=20, perfect_patience=None)
    assert _run_rule(rule, curve, losses)[1] is None


def test_paper_protocol_settings():
    config = TrainConfig.paper(learning_rate=1e-4, seed=3)
    assert (config.epochs, config.patience, config.batch_size) == (3000, 1000, 4)
    assert (config.clip_norm, config.learning_rate, config.seed) == (1.0, 1e-4, 3)
    assert config.ties_improve and config.perfect_patience is None
    assert config.stopping() == EarlyStopping(1000, True, None)
    scp1 = PRESETS["SelfRegulationSCP1"].with_protocol("paper")
    assert scp1.model_kwargs() == {"hidden_size": 64, "state_size": 16, "num_blocks": 2}
    assert scp1.train == TrainConfig.paper(1e-3)
    assert (
        PRESETS["EthanolConcentration"].with_protocol("paper").train.learning_rate
        == 1e-4
    )
    assert (
        DEFAULT_PRESET.replace(epochs=7, hidden_size=8, lr=None).to_dict()["epochs"]
        == 7
    )
    with pytest.raises(ValueError, match=r"Unknown settings \['lr'\]"):
        DEFAULT_PRESET.replace(lr=1e-3)
    with pytest.raises(ValueError, match="Unknown protocol 'slow'.*fast, paper"):
        DEFAULT_PRESET.with_protocol("slow")


class _Scripted(eqx.Module):
    """A model whose validation curve is scripted: `w` grows by exactly the learning
    rate per Adam step (the loss is -w on the training split, so the gradient is
    -1), and the metrics hook reads the curve at step round(w / lr)."""

    w: jax.Array
    lr: float = eqx.field(static=True)
    curves: tuple = eqx.field(static=True)  # (val, test), one value per step

    def step(self):
        return jnp.round(self.w / self.lr).astype(jnp.int32)


def _scripted_loss(model, x, mask, y):
    # Split label 2: training (loss -w); 0: validation, 1: test (loss 0).
    return jnp.where(y == 2, -model.w, 0.0 * model.w)


def _scripted_metrics(model, x, mask, y):
    table = jnp.asarray(model.curves)
    return {"accuracy": table[jnp.minimum(y, 1), model.step()]}


def _scripted_split(label, n=2):
    return types.SimpleNamespace(
        x=np.zeros((n, 2, 1), np.float32), y=np.full(n, label, np.int32), mask=None
    )


def _scripted_fit(curve, config, **kw):
    test_curve = np.arange(len(curve) + 1) / 100  # test accuracy = epoch / 100
    val = np.concatenate([[0.0], curve])
    model = _Scripted(
        jnp.zeros((), jnp.float64),
        config.learning_rate,
        (tuple(map(float, val)), tuple(map(float, test_curve))),
    )
    return fit(
        model,
        _scripted_split(2),
        _scripted_split(0),
        _scripted_split(1),
        loss=_scripted_loss,
        metrics=_scripted_metrics,
        config=config,
        progress=False,
        **kw,
    )


def test_paper_protocol_end_to_end():
    """The paper's rules in `fit` on a known validation curve: ties improve, the
    test accuracy is that of the LAST best-validation epoch, patience counts epochs
    since the best was last reached."""
    config = TrainConfig.paper(learning_rate=0.25, batch_size=2, patience=3, epochs=10)
    result = _scripted_fit(CURVE, config)
    assert [h["val_accuracy"] for h in result.history] == CURVE[:8]
    assert [h["epoch"] for h in result.history if h["improved"]] == [1, 2, 3, 5]
    assert (result.best_epoch, result.epochs_run) == (5, 8)
    assert result.stop_reason == "early_stopping"
    assert result.test_metrics["accuracy"] == 0.05
    np.testing.assert_allclose(result.model.w, 5 * 0.25, rtol=1e-6)  # Adam's eps
    # The fast default on the same curve: the first best epoch, and the epoch cap.
    config = TrainConfig(learning_rate=0.25, batch_size=2, patience=3, epochs=4)
    result = _scripted_fit(CURVE, config)
    assert (result.best_epoch, result.test_metrics["accuracy"]) == (2, 0.02)
    assert (result.epochs_run, result.stop_reason) == (4, "max_epochs")
    # Perfect validation accuracy at epoch 2: stops `perfect_patience` epochs later.
    config = TrainConfig(learning_rate=0.25, batch_size=2, perfect_patience=1)
    result = _scripted_fit([0.5, 1.0, 1.0, 1.0, 1.0, 1.0], config)
    assert (result.epochs_run, result.stop_reason) == (3, "perfect_validation")


def test_model_without_task_needs_a_loss():
    model = _Scripted(jnp.zeros(()), 0.1, ((0.0,), (0.0,)))
    with pytest.raises(TypeError, match=r"no `task` attribute.*pass `loss=fn`"):
        fit(model, _scripted_split(2), _scripted_split(0), config=CONFIG)
    with pytest.raises(ValueError, match="must return a scalar"):
        fit(
            model,
            _scripted_split(2),
            _scripted_split(0),
            loss=lambda m, x, mask, y: x,
            config=CONFIG,
            progress=False,
        )


class _Stamped(eqx.Module):
    """Returns the mean time stamp of the valid steps, if it gets any."""

    w: jax.Array

    def __call__(self, x, mask, ts=None):
        ts = jnp.zeros(x.shape[0], x.dtype) if ts is None else ts
        return (
            jnp.sum(jnp.where(mask, ts, 0)) / jnp.sum(mask).astype(ts.dtype)
            + 0 * self.w
        )


def test_time_stamps_reach_the_model():
    rng = np.random.default_rng(0)
    split = _bad(TRAIN, x=TRAIN.x.astype(np.float64))
    split.times = np.cumsum(rng.uniform(0.5, 2.0, TRAIN.mask.shape), axis=1)
    expected = np.mean([t[m].mean() for t, m in zip(split.times, split.mask)])

    def loss(model, x, mask, y, ts=None):
        return (model(x, mask, ts=ts) - model.w) ** 2

    def metrics(model, x, mask, y, ts=None):
        return {"t": model(x, mask, ts=ts)}

    config = TrainConfig(epochs=1, batch_size=20)
    result = fit(
        _Stamped(jnp.zeros(())),
        split,
        split,
        loss=loss,
        metrics=metrics,
        config=config,
        progress=False,
    )
    np.testing.assert_allclose(result.val_metrics["t"], expected, rtol=1e-12)
    # A loss that does not take `ts`: the stamps are ignored, with a warning.
    with pytest.warns(UserWarning, match=r"time stamps.*no `ts=` argument"):
        result = fit(
            _Stamped(jnp.zeros(())),
            split,
            split,
            loss=lambda model, x, mask, y: (model(x, mask) - model.w) ** 2,
            metrics=lambda model, x, mask, y: {"t": model(x, mask)},
            config=config,
            progress=False,
        )
    assert result.val_metrics["t"] == 0


# ------------------------------------------------------------- time budget


def test_time_budget_stops_cleanly_and_resumes(reference_run, tmp_path):
    ref_dir, _ = reference_run
    out = tmp_path / "run"
    budget = TrainConfig(**{**CONFIG.to_dict(), "time_budget": 1e-6})
    result = fit(_model(), TRAIN, VAL, TEST, config=budget, out_dir=out, progress=False)
    assert (result.epochs_run, result.stop_reason) == (1, "time_budget")
    meta, _ = read_checkpoint(out / "last.eqx")
    assert meta["state"]["epoch"] == 1
    assert meta["state"]["stop_reason"] == "time_budget"
    # Resumed (here without a budget), the run ends as the uninterrupted one.
    resumed = fit(
        _model(key=5),
        TRAIN,
        VAL,
        TEST,
        config=CONFIG,
        out_dir=out,
        resume=True,
        progress=False,
    )
    assert (resumed.epochs_run, resumed.stop_reason) == (3, "max_epochs")
    _assert_same_run(ref_dir, out)


# ------------------------------------------- one step against optax by hand


def test_train_steps_equal_clip_then_adam_by_hand():
    """Three full-batch steps of `fit` equal optax's clip_by_global_norm then adam
    applied by hand to gradients of a hand-written cross-entropy. The clipping is
    active (each gradient's norm is above clip_norm) and the clipping factor differs
    between steps, which Adam (scale-invariant on one step) does see."""
    x, y, mask = TRAIN.x[:8], TRAIN.y[:8], TRAIN.mask[:8]
    data = types.SimpleNamespace(x=x, y=y, mask=mask)
    # CONFIG's batch size, learning rate and clip norm: the compiled step is shared.
    config = TrainConfig(**{**CONFIG.to_dict(), "patience": 9})
    model = _model(key=3)
    result = fit(model, data, data, config=config, progress=False)

    @eqx.filter_jit
    @eqx.filter_grad
    def gradient(model):  # of the mean cross-entropy, written out
        logits = jax.vmap(model)(x, mask)
        logp = logits - jax.nn.logsumexp(logits, axis=1, keepdims=True)
        return -jnp.mean(logp[jnp.arange(8), y])

    clip = optax.clip_by_global_norm(CONFIG.clip_norm)
    adam = optax.adam(CONFIG.learning_rate)
    params = eqx.filter(model, eqx.is_inexact_array)
    clip_state, adam_state = clip.init(params), adam.init(params)
    norms = []
    for _ in range(3):
        grads = gradient(model)
        leaves = jax.tree.leaves(grads)
        norms.append(np.sqrt(sum(np.sum(np.square(g)) for g in leaves)))
        grads, clip_state = clip.update(grads, clip_state)
        with jax.numpy_dtype_promotion("standard"):
            updates, adam_state = adam.update(grads, adam_state, params)
        model = eqx.apply_updates(model, updates)
        params = eqx.filter(model, eqx.is_inexact_array)
    assert min(norms) > CONFIG.clip_norm and max(norms) / min(norms) > 1.01, norms
    expected = jax.tree.leaves(params)
    got = jax.tree.leaves(eqx.filter(result.last_model, eqx.is_inexact_array))
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def _rates(config, steps_per_epoch, param=0.0):
    """The update of each optimiser step on a scalar parameter whose gradient is
    always 0.5 (below the clip norm): Adam's normalised step is then exactly 1, so
    the update is -(learning rate of that step) (times 1 + weight_decay * param
    for AdamW)."""
    optimiser = make_optimiser(config, steps_per_epoch)
    params = jnp.asarray(param, jnp.float32)
    state, out = optimiser.init(params), []
    with jax.numpy_dtype_promotion("standard"):
        for _ in range(config.epochs * steps_per_epoch):
            updates, state = optimiser.update(jnp.float32(0.5), state, params)
            out.append(-float(updates))
    return np.asarray(out)


def test_schedules_against_their_formulas():
    """Each step's learning rate against the formula written out: warm-up
    t / W * lr, then cosine decay lr * (1 + cos(pi * s / S)) / 2 to 0 over the
    remaining S steps; constant without a schedule; AdamW adds lr * wd * param."""
    lr, per_epoch = 1e-2, 3
    constant = TrainConfig(learning_rate=lr, epochs=4)
    np.testing.assert_allclose(_rates(constant, per_epoch), lr, rtol=1e-5)
    cosine = TrainConfig(learning_rate=lr, epochs=6, schedule="cosine", warmup_epochs=2)
    t = np.arange(6 * per_epoch)
    warm, total = 2 * per_epoch, 6 * per_epoch
    expected = np.where(
        t < warm,
        lr * t / warm,
        lr * (1 + np.cos(np.pi * (t - warm) / (total - warm))) / 2,
    )
    np.testing.assert_allclose(_rates(cosine, per_epoch), expected, atol=1e-8)
    warmed = TrainConfig(learning_rate=lr, epochs=4, warmup_epochs=1)
    t = np.arange(4 * per_epoch)
    np.testing.assert_allclose(
        _rates(warmed, per_epoch),
        np.where(t < per_epoch, lr * t / per_epoch, lr),
        atol=1e-8,
    )
    decayed = TrainConfig(learning_rate=lr, epochs=2, weight_decay=0.1)
    np.testing.assert_allclose(
        _rates(decayed, per_epoch, param=2.0), lr * (1 + 0.1 * 2.0), rtol=1e-5
    )
    with pytest.raises(ValueError, match="`warmup_epochs` \\(6\\) must be fewer"):
        TrainConfig(epochs=6, schedule="cosine", warmup_epochs=6)


def test_scheduled_run_resumes_exactly(tmp_path):
    """The schedule's step count lives in the optimiser state: a cosine run with
    warm-up and weight decay, stopped after one epoch and resumed, ends
    bit-identical to the uninterrupted run (and differs from the constant-rate
    run, so the schedule is really applied)."""
    config = TrainConfig(
        **{
            **CONFIG.to_dict(),
            "schedule": "cosine",
            "warmup_epochs": 1,
            "weight_decay": 0.01,
        }
    )
    straight = fit(_model(), TRAIN, VAL, config=config, out_dir=tmp_path / "a")
    assert straight.epochs_run == config.epochs
    # Stopped by a time budget (not by fewer `epochs`, which would change the
    # cosine's horizon): one epoch always runs.
    one = TrainConfig(**{**config.to_dict(), "time_budget": 1e-6})
    first = fit(_model(), TRAIN, VAL, config=one, out_dir=tmp_path / "b")
    assert (first.epochs_run, first.stop_reason) == (1, "time_budget")
    fit(_model(), TRAIN, VAL, config=config, out_dir=tmp_path / "b", resume=True)
    _assert_same_run(tmp_path / "a", tmp_path / "b")
    plain = fit(_model(), TRAIN, VAL, config=CONFIG, progress=False)
    assert straight.history[-1]["train_loss"] != plain.history[-1]["train_loss"]
    model, meta = load_checkpoint(tmp_path / "b" / "last.eqx")
    assert meta["train_config"]["schedule"] == "cosine"


def test_resume_a_checkpoint_of_the_previous_format(reference_run, tmp_path):
    """A run checkpointed before the stopping rule had its own state (a top-level
    `bad_epochs`, and none of the newer TrainConfig fields) resumes exactly."""
    ref_dir, _ = reference_run
    out = tmp_path / "run"
    one = TrainConfig(**{**CONFIG.to_dict(), "epochs": 1})
    fit(_model(), TRAIN, VAL, TEST, config=one, out_dir=out, progress=False)
    last = out / "last.eqx"
    meta, payload = read_checkpoint(last)
    like = _run_dir.train_state_like(_model(), make_optimiser(CONFIG))
    tree = _checkpoint.deserialise(last, payload, like)
    state = meta["state"]
    state["bad_epochs"] = state.pop("stopping")["bad_epochs"]
    for new in ("ties_improve", "perfect_patience", "time_budget"):
        del meta["train_config"][new]
    del meta["model_class"]
    _checkpoint.save_checkpoint(last, tree, meta)
    assert not (out / "prev.eqx").exists()
    fit(
        _model(),
        TRAIN,
        VAL,
        TEST,
        config=CONFIG,
        out_dir=out,
        resume=True,
        progress=False,
    )
    _assert_same_run(ref_dir, out)


def test_optimiser_shared_across_runs_that_differ_only_in_length():
    """The compiled train step is keyed on the optimiser: a constant-rate run's
    optimiser must not depend on `epochs` or the steps per epoch (else every run
    length recompiles), while a cosine schedule's must."""
    a = TrainConfig(epochs=3)
    b = TrainConfig(epochs=50, patience=4)
    assert make_optimiser(a, 5) is make_optimiser(b, 7)
    c = TrainConfig(epochs=3, schedule="cosine")
    d = TrainConfig(epochs=50, schedule="cosine")
    assert make_optimiser(c, 5) is not make_optimiser(d, 5)


def test_each_epoch_visits_the_data_in_its_own_seeded_order(monkeypatch):
    """The batches of epoch e hold the training sequences in the documented order,
    `jr.permutation(fold_in(key(seed), e), n)` for e = 1, 2, ... (read off the
    sequences the train step receives, not off the order passed around): a new
    order each epoch, every sequence once per epoch, the same for the same seed
    and another for another seed. (A resume test cannot see a shuffle bug that
    both runs share.)"""
    from lrc_toolkit.training import _steps

    visits = []
    real_step = _steps.train_step

    def recording_step(model, opt_state, optimiser, objective, batch, weight):
        x = np.asarray(batch[0])
        for row, w in zip(x, np.asarray(weight)):
            if w > 0:
                hits = np.flatnonzero(np.all(TRAIN.x == row, axis=(1, 2)))
                assert hits.size == 1
                visits.append(int(hits[0]))
        return real_step(model, opt_state, optimiser, objective, batch, weight)

    monkeypatch.setattr(_steps, "train_step", recording_step)
    n = len(TRAIN.y)

    def orders(seed):
        visits.clear()
        config = TrainConfig(
            epochs=3, batch_size=8, learning_rate=1e-2, patience=5, seed=seed
        )
        fit(_model(), TRAIN, VAL, config=config, progress=False)
        assert len(visits) == 3 * n
        return [visits[e * n : (e + 1) * n] for e in range(3)]

    first = orders(7)
    for epoch, order in enumerate(first, start=1):
        expected = np.asarray(jr.permutation(jr.fold_in(jr.key(7), epoch), n))
        assert order == expected.tolist(), epoch
    assert len({tuple(o) for o in first}) == 3  # a new order every epoch
    assert orders(7) == first
    assert orders(8) != first
