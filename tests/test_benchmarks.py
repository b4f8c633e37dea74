"""Smoke test of the benchmark suite: every script runs end to end through
`lrc-toolkit bench` on a tiny grid (its timing and agreement checks included) and
writes its CSV and PNG."""

import csv

import pytest

from lrc_toolkit.cli import main


@pytest.mark.slow
def test_bench_all_tiny(tmp_path, capsys):
    tiny = ["--T", "48", "--D", "4"]
    for name, extra in [
        ("forward", [*tiny, "--batch", "2"]),
        ("gradient", [*tiny, "--batch", "1"]),
        ("iterations", ["--T", "48", "--scale", "1", "4"]),
        ("ode", tiny),
        ("scan", tiny),
    ]:
        argv = ["bench", name, "--repeats", "1", "--out", str(tmp_path), *extra]
        assert main(argv) == 0
        assert (tmp_path / f"{name}.csv").exists()
        assert (tmp_path / f"{name}.png").stat().st_size > 0
    with open(tmp_path / "forward.csv") as f:
        rows = {r["contender"]: r for r in csv.DictReader(f)}
    assert set(rows) == {
        "sequential",  # lax.scan without the stability check: the baseline
        "sequential_checked",
        "parallel",
        "parallel_unchunked",
        "parallel_assoc",
        "naive",
        "solve_auto",
    }
    assert float(rows["sequential"]["ratio_to_scan"]) == 1.0
    assert all(float(r["max_abs_err"]) <= 1e-3 for r in rows.values())
    with open(tmp_path / "iterations.csv") as f:
        its = list(csv.DictReader(f))
    assert all(r["converged_cold"] == "True" for r in its)
    out = capsys.readouterr().out
    assert "| evaluation | time (ms)" in out


def test_bench_errors(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["bench", "nonsense"])
    with pytest.raises(SystemExit):
        main(["bench", "scan", "--repeats", "0", "--out", str(tmp_path)])
    assert "must be a positive integer" in capsys.readouterr().err
