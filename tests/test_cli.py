import json
import os
import shutil
import subprocess
import sys

import pytest

from lrc_toolkit import cli


TINY = [
    "--epochs",
    "2",
    "--hidden",
    "4",
    "--state",
    "4",
    "--blocks",
    "1",
    "--batch-size",
    "28",
    "--solver",
    "sequential",
    "--no-progress",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """`lrc-toolkit train` run end to end through the installed console script, on
    the default (bundled) data set with a tiny model and two seeds."""
    out = tmp_path_factory.mktemp("cli") / "run"
    exe = shutil.which("lrc-toolkit") or pytest.fail("lrc-toolkit is not installed")
    proc = subprocess.run(
        [exe, "train", "--out", str(out), "--seeds", "2345", "3456", *TINY],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "JAX_ENABLE_X64": "0"},
    )
    assert proc.returncode == 0, proc.stderr
    return out, proc


def test_train_writes_results(trained):
    out, proc = trained
    results = json.loads((out / "results.json").read_text())
    assert results["dataset"] == "BasicMotions"
    assert results["seeds"] == [2345, 3456]
    accs = [results["per_seed"][s]["test_accuracy"] for s in ("2345", "3456")]
    assert all(0 <= a <= 1 for a in accs)
    mean = sum(accs) / 2
    assert results["test_accuracy"] == pytest.approx(mean)
    assert results["test_accuracy_std"] == pytest.approx(abs(accs[0] - accs[1]) / 2)
    assert results["settings"]["hidden_size"] == 4
    assert results["solver"] == "sequential"
    # The table in the style of the paper's Table 1.
    assert "| LrcSSM | " in proc.stdout
    assert f"{100 * mean:.1f} ± " in proc.stdout
    assert (out / "training_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for seed in (2345, 3456):
        lines = (out / f"seed_{seed}" / "metrics.jsonl").read_text().splitlines()
        assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
        assert (out / f"seed_{seed}" / "best.eqx").exists()


def test_evaluate_checkpoint(trained, capsys):
    out, _ = trained
    results = json.loads((out / "results.json").read_text())
    best = out / "seed_3456" / "best.eqx"
    assert cli.main(["evaluate", str(best), "--dataset", "BasicMotions"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["split_seed"] == 3456  # taken from the checkpoint
    assert report["num_examples"] == 12
    assert report["accuracy"] == results["per_seed"]["3456"]["test_accuracy"]


def test_resume_finished_run_and_refuse_overwrite(trained, capsys):
    out, _ = trained
    before = json.loads((out / "results.json").read_text())
    args = ["train", "--out", str(out), "--seeds", "2345", "3456", *TINY]
    assert cli.main(args) == 2
    assert "already holds a training run" in capsys.readouterr().err
    assert cli.main([*args, "--resume"]) == 0  # finished: nothing to train
    after = json.loads((out / "results.json").read_text())
    assert (
        after["per_seed"]["2345"]["test_accuracy"]
        == (before["per_seed"]["2345"]["test_accuracy"])
    )
    assert after["test_accuracy"] == before["test_accuracy"]


def test_evaluate_errors(trained, tmp_path, capsys):
    out, _ = trained
    best = out / "seed_2345" / "best.eqx"
    assert cli.main(["evaluate", str(best), "--dataset", "JapaneseVowels"]) == 2
    assert "has 12 channels but the checkpoint's model takes 6" in (
        capsys.readouterr().err
    )
    broken = tmp_path / "broken.eqx"
    broken.write_bytes(best.read_bytes()[:-100])
    assert cli.main(["evaluate", str(broken)]) == 2
    err = capsys.readouterr().err
    assert "broken.eqx" in err and "truncated or corrupted" in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dataset", "BasicMotion"], "Unknown data set 'BasicMotion'"),
        (["--preset", "Heart"], "Unknown preset 'Heart'"),
        (["--neuron", "gru9"], "Unknown --neuron 'gru9'"),
        (["--seeds", "1", "1"], "repeated"),
    ],
)
def test_train_errors_before_training(args, message, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "--out", str(out), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (out / "seed_1").exists() and not (out / "seed_2345").exists()


def test_unwritable_out(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert cli.main(["train", "--out", str(blocker / "run")]) == 2
    assert "Cannot create the output directory" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args", [["--epochs", "0"], ["--lr", "-1"], ["--lr", "nan"], ["--seeds", "x"]]
)
def test_bad_values_rejected_by_parser(args, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["train", "--out", str(tmp_path), *args])
    assert e.value.code == 2
    assert "error: argument" in capsys.readouterr().err


def test_settings_from_preset_and_overrides():
    parse = cli.build_parser().parse_args
    s = cli._resolve_settings(parse(["train", "--out", "x", "--preset", "Heartbeat"]))
    assert (s["learning_rate"], s["hidden_size"], s["state_size"]) == (1e-3, 64, 64)
    assert (s["num_blocks"], s["batch_size"]) == (4, 4)
    s = cli._resolve_settings(
        parse(["train", "--out", "x", "--dataset", "EigenWorms", "--lr", "0.5"])
    )
    assert (s["learning_rate"], s["hidden_size"], s["num_blocks"]) == (0.5, 64, 4)
    s = cli._resolve_settings(parse(["train", "--out", "x"]))
    assert s["hidden_size"] == cli.DEFAULTS.hidden_size


def test_subcommands_are_pluggable(monkeypatch, capsys):
    def add_hello_parser(subparsers):
        p = subparsers.add_parser("hello")
        p.set_defaults(func=lambda args: print("hi") or 0)

    monkeypatch.setattr(cli, "SUBCOMMANDS", [*cli.SUBCOMMANDS, add_hello_parser])
    assert cli.main(["hello"]) == 0
    assert capsys.readouterr().out == "hi\n"


def test_module_entry_point():
    proc = subprocess.run(
        [sys.executable, "-m", "lrc_toolkit.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0
    assert "train" in proc.stdout and "evaluate" in proc.stdout
