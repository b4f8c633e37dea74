"""The GPU suite (`benchmarks/gpu.sh`) cannot rot: its smoke mode runs the whole
script end to end on the CPU at tiny sizes, and its guards (time, memory) are
checked on their own without a device."""

import csv
import dataclasses
import math
import os
import subprocess
import time
from pathlib import Path

import pytest

from lrc_toolkit.cli.bench import load


ROOT = Path(__file__).resolve().parents[1]
SOLVER_COLUMNS = {
    "device",
    "T",
    "D",
    "batch",
    "mode",
    "contender",
    "status",
    "median_ms",
    "rounds",
    "ratio_to_scan",
    "speedup_vs_scan",
    "speedup_vs_autodiff",
    "iterations",
    "max_abs_err",
    "grad_rel_err",
    "peak_mib",
    "device_peak_mib",
}
TRAINING_COLUMNS = {
    "device",
    "task",
    "H",
    "D",
    "blocks",
    "T",
    "batch",
    "contender",
    "status",
    "s_per_1000_steps",
    "steps_per_round",
    "first_loss",
    "first_loss_diff",
    "paper_a100_s_per_1000",
}


@pytest.fixture(scope="module")
def gpu():
    return load("gpu")


def read(path):
    with open(path) as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


@pytest.mark.slow
def test_smoke_run(tmp_path):
    """`bash benchmarks/gpu.sh --smoke` on the CPU: every configuration measured,
    the parallel solver agreeing with lax.scan, ratios consistent with the times,
    the files named after the device."""
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    proc = subprocess.run(
        [
            "bash",
            str(ROOT / "benchmarks" / "gpu.sh"),
            "--smoke",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "block_newton_cpu.csv",
        "gpu_cpu.png",
        "solver_cpu.csv",
        "summary_cpu.md",
        "training_cpu.csv",
    ]
    assert (tmp_path / "gpu_cpu.png").stat().st_size > 10_000

    columns, rows = read(tmp_path / "solver_cpu.csv")
    assert SOLVER_COLUMNS <= set(columns)
    contenders = {
        "forward": ("sequential", "parallel"),
        "gradient": ("sequential", "sequential_autodiff", "parallel"),
    }
    assert {(int(r["T"]), r["mode"], r["contender"]) for r in rows} == {
        (T, mode, c) for T in (64, 256) for mode, cs in contenders.items() for c in cs
    }
    times = {(r["T"], r["mode"], r["contender"]): float(r["median_ms"]) for r in rows}
    for r in rows:
        assert r["status"] == "ok", r
        assert (r["device"], r["D"], r["batch"], r["rounds"]) == ("cpu", "8", "2", "3")
        t = times[r["T"], r["mode"], r["contender"]]
        ratio = t / times[r["T"], r["mode"], "sequential"]
        assert float(r["ratio_to_scan"]) == pytest.approx(ratio, rel=1e-9)
        assert float(r["speedup_vs_scan"]) == pytest.approx(1 / ratio, rel=1e-9)
        assert float(r["peak_mib"]) > 0
        assert math.isnan(float(r["device_peak_mib"]))  # no memory_stats on a CPU
        if r["mode"] == "forward":
            assert r["speedup_vs_autodiff"] == ""
            assert float(r["max_abs_err"]) <= 1e-5  # f32, against lax.scan
        else:
            autodiff = times[r["T"], "gradient", "sequential_autodiff"]
            assert float(r["speedup_vs_autodiff"]) == pytest.approx(autodiff / t)
            assert float(r["grad_rel_err"]) <= 1e-4  # against the fixed-point one
        if (r["mode"], r["contender"]) == ("forward", "parallel"):
            assert 1 <= int(r["iterations"]) <= 10
        else:
            assert r["iterations"] == ""
        if r["contender"] == "sequential":
            assert float(r["max_abs_err"] or r["grad_rel_err"]) == 0.0

    key = next(
        r
        for r in rows
        if (r["T"], r["mode"], r["contender"]) == ("256", "forward", "parallel")
    )

    columns, rows = read(tmp_path / "training_cpu.csv")
    assert TRAINING_COLUMNS <= set(columns)
    assert [(r["task"], r["contender"]) for r in rows] == [
        ("SelfRegulationSCP1", c) for c in ("sequential", "parallel")
    ]
    for r in rows:
        assert r["status"] == "ok", r
        assert float(r["s_per_1000_steps"]) > 0
        assert float(r["paper_a100_s_per_1000"]) == 12
        # a cross-entropy (the He-uniform start's logits are O(1), so not near
        # log(classes)), the same for both solvers
        assert 0 < float(r["first_loss"]) < 20
        assert float(r["first_loss_diff"]) <= 1e-5

    # block Newton, dense DEER, quasi-DEER and the scan on FitzHugh-Nagumo
    _, rows = read(tmp_path / "block_newton_cpu.csv")
    assert sorted(r["solver"] for r in rows) == [
        "block",
        "dense",
        "quasi",
        "sequential",
    ]
    for r in rows:
        assert (r["T"], r["outcome"]) == ("64", "successful"), r
        assert float(r["err_vs_scan"]) <= 1e-4, r

    summary = (tmp_path / "summary_cpu.md").read_text()
    assert summary in proc.stdout
    targets = [
        "100x lax.scan",
        "30x lax.scan (",
        "30x autodiff",
        "<= 3 Newton",
        "1e-05",
    ]
    for target in targets:
        (line,) = [line for line in summary.splitlines() if target in line]
        assert line.endswith((": met", ": NOT met")), line
    # the smoke grid's T = 256 stands for the key T = 65536
    assert "at T = 256, D = 8, batch 2" in summary
    its = int(key["iterations"])
    verdict = "met" if its <= 3 else "NOT met"
    assert f"<= 3 Newton iterations: {its}: {verdict}" in summary


def test_full_suite_trains_the_papers_three_tasks(gpu):
    """The smoke run trains one task; the full suite's three have the data sets'
    shapes and the paper's A100 training speeds (s per 1000 steps)."""
    shapes = {
        (t.name, t.length, t.channels, t.classes, t.paper_a100) for t in gpu.FULL.tasks
    }
    assert shapes == {
        ("SelfRegulationSCP1", 896, 6, 2, 12.0),
        ("EthanolConcentration", 1751, 3, 4, 15.0),
        ("EigenWorms", 17984, 6, 5, 33.0),
    }
    for t in gpu.FULL.tasks:
        preset = gpu.PRESETS[t.name]
        assert (t.hidden_size, t.state_size, t.num_blocks) == (
            preset.hidden_size,
            preset.state_size,
            preset.num_blocks,
        )


def test_time_guard(gpu, monkeypatch):
    assert gpu.predict_seconds(None, 1e9) == 0.0
    prev = dict(size=100.0, compile_s=3.0, call_s=0.5)
    assert gpu.predict_seconds(prev, 400.0) == 3.0 + 2 * 0.5 * 4
    assert gpu.predict_seconds(prev, 400.0, calls=3) == 3.0 + 3 * 0.5 * 4
    assert gpu.skip_reason(7.0, 8.0) is None
    assert gpu.skip_reason(9.0, 8.0) == "skipped: time (needs ~9 s, 8 s left)"
    assert gpu.skip_reason(0.0, 8.0, 3 * 2**30, 2 * 2**30) == (
        "skipped: OOM (needs 3.0 GiB of 2.0 GiB)"
    )
    assert gpu.skip_reason(0.0, 8.0, 3 * 2**30, None) is None
    assert gpu.skip_reason(0.0, -3.0) == "skipped: time (0 s left)"
    # Nothing is allocated or compiled when no time is left: every point is
    # recorded as skipped.
    monkeypatch.setattr(gpu, "problem", lambda *a: pytest.fail("made the inputs"))
    rows = []
    out = gpu.solver_grid(gpu.SMOKE, 1, gpu.Clock(-1.0), 60.0, rows.append)
    assert [r["status"][:14] for r in out] == ["skipped: time "] * 4
    task = gpu.SMOKE.tasks[0]
    prev = dict(size=gpu.task_size(task) / 2, blocks=2, compile_s=4.0, call_s=1.0)
    assert gpu.task_prediction(prev, task) == 4.0 * task.num_blocks / 2 + 3 * 2.0


def test_memory_guard(gpu, monkeypatch):
    """A device too small for the programs: the first T of each mode is compiled
    and refused, the next is skipped without compiling."""
    monkeypatch.setattr(gpu, "device_memory", lambda: (float("nan"), 1))
    compiled = []
    real = gpu.compile_with_memory
    monkeypatch.setattr(
        gpu, "compile_with_memory", lambda f, *a: compiled.append(1) or real(f, *a)
    )
    suite = dataclasses.replace(gpu.SMOKE, T=(8, 16), D=(2,))
    rows = gpu.solver_grid(suite, 1, gpu.Clock(600.0), 600.0, lambda rows: None)
    assert [(r["T"], r["mode"], r["status"].split(" (")[0]) for r in rows] == [
        (8, "forward", "skipped: OOM"),
        (8, "gradient", "skipped: OOM"),
        (16, "forward", "skipped: OOM"),
        (16, "gradient", "skipped: OOM"),
    ]
    assert rows[2]["status"] == "skipped: OOM (at a smaller T)"
    assert len(compiled) == 2  # one program per mode, at T = 8
    assert gpu.is_oom(RuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating"))
    assert not gpu.is_oom(ValueError("shapes do not match"))


def test_device_slug(gpu, monkeypatch):
    class Fake:
        device_kind = "NVIDIA H100 80GB HBM3"

    monkeypatch.setattr(gpu.jax, "devices", lambda: [Fake()])
    assert gpu.device_slug() == "nvidia-h100-80gb-hbm3"


def test_cli_errors(gpu, capsys):
    with pytest.raises(SystemExit):
        gpu.main(["--smoke"])  # --out is required
    assert "--out" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        gpu.main(["--out", "x", "--repeats", "0"])
    assert "must be a positive integer" in capsys.readouterr().err


def test_rounds_within_budget(gpu):
    """`time_interleaved(..., budget_s)` stops the rounds before the budget runs
    out (at least one), and runs them all without one."""
    calls = []

    def slow():
        calls.append(1)
        time.sleep(0.02)
        return 0

    times = gpu.time_interleaved({"a": slow, "b": slow}, lambda n, o: None, 50, 0.2)
    assert 1 <= len(times["a"]) == len(times["b"]) <= 5  # 0.04 s a round
    assert len(calls) == 2 * (1 + len(times["a"]))  # warm-up + rounds
    assert 0.2 >= sum(times["a"]) + sum(times["b"]) > 0
    times = gpu.time_interleaved({"a": slow}, lambda n, o: None, 3, None)
    assert len(times["a"]) == 3
    times = gpu.time_interleaved({"a": slow}, lambda n, o: None, 3, -1.0)
    assert len(times["a"]) == 1


def test_summary_and_plot_with_skips(gpu, tmp_path):
    """What a GPU run with skipped configurations writes: the targets read at
    (T, D) = (65536, 64), judged against the bounds, or 'not measured' with the
    reason; the figure still drawn."""

    def row(T, mode, contender, ms, **kw):
        return dict(T=T, D=64, batch=16, mode=mode, contender=contender,
                    status="ok", median_ms=ms, **kw)  # fmt: skip

    solver = [
        row(65536, "forward", "sequential", 500.0, speedup_vs_scan=1.0),
        row(
            65536,
            "forward",
            "parallel",
            4.0,
            speedup_vs_scan=125.0,
            speedup_vs_autodiff="",
            iterations=4,
            max_abs_err=2e-6,
        ),  # fmt: skip
        row(65536, "gradient", "sequential", 900.0, speedup_vs_scan=1.0),
        row(65536, "gradient", "sequential_autodiff", 1800.0, speedup_vs_scan=0.5),
        row(
            65536,
            "gradient",
            "parallel",
            45.0,
            speedup_vs_scan=20.0,
            speedup_vs_autodiff=40.0,
            grad_rel_err=1e-6,
        ),  # fmt: skip
        dict(
            T=262144,
            D=64,
            batch=16,
            mode="forward",
            contender="all",
            status="skipped: time (needs ~90 s, 10 s left)",
        ),  # fmt: skip
    ]
    training = [
        dict(
            task="EigenWorms",
            contender="all",
            status="skipped: OOM (at run time)",
            paper_a100_s_per_1000=33.0,
        ),  # fmt: skip
        dict(
            task="SelfRegulationSCP1",
            contender="parallel",
            status="ok",
            s_per_1000_steps=8.0,
            paper_a100_s_per_1000=12.0,
        ),  # fmt: skip
    ]
    text = gpu.summary(solver, training, gpu.FULL)
    assert "at T = 65536, D = 64, batch 16" in text
    assert "forward >= 100x lax.scan: 125: met" in text
    assert "point): 20: NOT met" in text  # 30x over Sequential()
    assert "30x autodiff through lax.scan: 40: met" in text
    assert "<= 3 Newton iterations: 4: NOT met" in text
    assert "<= 1e-05: 2e-06: met" in text
    assert "skipped: time (needs ~90 s, 10 s left)" in text
    assert "skipped: OOM (at run time)" in text
    # nothing measured at the key point: every target says why
    text = gpu.summary(solver[-1:], [], dataclasses.replace(gpu.FULL, key=(262144, 64)))
    assert text.count("not measured (skipped: time (needs ~90 s, 10 s left))") == 3
    assert text.count("not measured (not in the grid)") == 2  # no gradient row
    gpu.plot(solver, training, tmp_path / "fig.png")
    assert (tmp_path / "fig.png").stat().st_size > 10_000
