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
import pytest

from lrc_toolkit.models import LrcSSM
from lrc_toolkit.training import (
    _checkpoint,
    CheckpointError,
    evaluate,
    fit,
    load_checkpoint,
    read_checkpoint,
    TrainConfig,
)


# One tiny setup shared by the in-process tests, so that the train step compiles
# once: 3 channels, 3 classes, sequences of length <= 12 (variable, masked).
P, C, T = 3, 3, 12
CONFIG = TrainConfig(epochs=3, batch_size=8, learning_rate=1e-2, patience=5, seed=7)


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


def _model(solver="parallel", key=0, **kw):
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


def test_first_losses_parallel_equal_sequential(reference_run):
    _, parallel = reference_run
    sequential = fit(
        _model("sequential"), TRAIN, VAL, TEST, config=CONFIG, progress=False
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
        solver="sequential",
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
                   solver="sequential", dtype=jnp.float32, key=jr.key(0))
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


def test_sigkill_between_epochs_then_resume(reference_subprocess_run, tmp_path):
    out = tmp_path / "run"
    _kill_at_marker(_worker(tmp_path, out, "between-epochs", kill_epoch=2), out)
    meta, _ = read_checkpoint(out / "last.eqx")
    assert meta["state"]["epoch"] == 2
    _finish(_worker(tmp_path, out, resume=True))
    _assert_same_run(reference_subprocess_run, out)
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3, 4]


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
        ("epochs", 0, "`epochs` must be an integer >= 1"),
        ("batch_size", 2.5, "batch_size"),
        ("learning_rate", -1.0, "`learning_rate` must be a finite positive"),
        ("learning_rate", float("nan"), "`learning_rate` must be a finite positive"),
        ("patience", 0, "`patience`"),
        ("seed", -3, "`seed`"),
        ("clip_norm", 0.0, "`clip_norm`"),
    ],
)
def test_bad_config(field, value, match):
    # (A float for an int field is a TypeError from the runtime type checker.)
    with pytest.raises((ValueError, TypeError), match=match):
        TrainConfig(**{field: value})
