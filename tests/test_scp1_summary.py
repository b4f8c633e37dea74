"""`benchmarks/scp1/summary.py`: the screen's table is the mean over seeds of what
the runs recorded (checked on two hand-made runs with known numbers)."""

import importlib.util
import json
import pathlib

import pytest


ROOT = pathlib.Path(__file__).resolve().parents[1]


def _summary():
    spec = importlib.util.spec_from_file_location(
        "scp1_summary", ROOT / "benchmarks" / "scp1" / "summary.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(folder, per_seed, train_end):
    folder.mkdir(parents=True)
    results = {
        "seeds": list(per_seed),
        "per_seed": {
            str(s): {"test_accuracy": test, "val_accuracy": val}
            for s, (val, test) in per_seed.items()
        },
    }
    (folder / "results.json").write_text(json.dumps(results))
    for s in per_seed:
        (folder / f"seed_{s}").mkdir()
        lines = [
            {
                "epoch": e,
                "train_accuracy": a,
                "val_accuracy": 0.5,
                "val_loss": 1.0,
                "seconds": 2.0 + e,
            }
            for e, a in enumerate([0.5, train_end[s]], start=1)
        ]
        (folder / f"seed_{s}" / "metrics.jsonl").write_text(
            "\n".join(json.dumps(r) for r in lines) + "\n"
        )


def test_table_is_the_mean_over_seeds(tmp_path, capsys):
    summary = _summary()
    _run(tmp_path / "a", {1: (0.8, 0.7), 2: (0.9, 0.75)}, {1: 0.6, 2: 1.0})
    _run(tmp_path / "b", {1: (0.5, 0.5)}, {1: 0.4})
    (tmp_path / "not-a-run").mkdir()
    summary.main(
        [
            str(tmp_path),
            "--csv",
            str(tmp_path / "t.csv"),
            "--out",
            str(tmp_path / "c.png"),
        ]
    )
    out = capsys.readouterr().out
    # a: val (0.8, 0.9) -> 85.0 ± 5.0; test (0.7, 0.75) -> 72.5 ± 2.5; train end 80.
    assert "| a | 2 | 85.0 ± 5.0 | 72.5 ± 2.5 | 80.0 ± 20.0 | 2 | 4.0 |" in out
    assert "| b | 1 | 50.0 ± 0.0 | 50.0 ± 0.0 | 40.0 ± 0.0 | 2 | 4.0 |" in out
    assert "not-a-run" not in out
    assert (tmp_path / "c.png").stat().st_size > 0
    rows = (tmp_path / "t.csv").read_text().splitlines()
    assert rows[0].startswith("variant,seeds,val_mean") and len(rows) == 3


def test_no_runs_is_an_error(tmp_path):
    with pytest.raises(SystemExit, match="no run with a results.json"):
        _summary().main([str(tmp_path)])
