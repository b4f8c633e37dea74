import json
import os
import shutil
import subprocess
import sys

import diffrax
import pytest

import lrc_toolkit as lt
from lrc_toolkit import cli
from lrc_toolkit.cli._args import discretisation_from_args, solver_from_args


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


@pytest.mark.slow
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


@pytest.mark.slow
def test_evaluate_checkpoint(trained, capsys):
    out, _ = trained
    results = json.loads((out / "results.json").read_text())
    best = out / "seed_3456" / "best.eqx"
    assert cli.main(["evaluate", str(best), "--dataset", "BasicMotions"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["split_seed"] == 3456  # taken from the checkpoint
    assert report["num_examples"] == 12
    assert report["accuracy"] == results["per_seed"]["3456"]["test_accuracy"]


@pytest.mark.slow
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


@pytest.mark.slow
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
    "args",
    [
        ["--epochs", "0"],
        ["--lr", "-1"],
        ["--lr", "nan"],
        ["--seeds", "x"],
        ["--preset", "Heart"],
        ["--schedule", "linear"],
        ["--warmup-epochs", "-1"],
        ["--weight-decay", "-0.5"],
    ],
)
def test_bad_values_rejected_by_parser(args, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["train", "--out", str(tmp_path), *args])
    assert e.value.code == 2
    assert "error: argument" in capsys.readouterr().err


def test_settings_from_preset_and_overrides():
    from lrc_toolkit.cli.train import resolve_preset
    from lrc_toolkit.training import DEFAULT_PRESET

    parse = cli.build_parser().parse_args
    args = parse(["train", "--out", "x", "--preset", "Heartbeat"])
    s, source = resolve_preset(args, "BasicMotions")
    assert (s.train.learning_rate, s.hidden_size, s.state_size) == (1e-3, 64, 64)
    assert (s.num_blocks, s.train.batch_size) == (4, 4)
    assert source == "preset Heartbeat"
    args = parse(["train", "--out", "x", "--dataset", "EigenWorms", "--lr", "0.5"])
    s, _ = resolve_preset(args, "EigenWorms")
    assert (s.train.learning_rate, s.hidden_size, s.num_blocks) == (0.5, 64, 4)
    s, source = resolve_preset(parse(["train", "--out", "x"]), "BasicMotions")
    assert s.hidden_size == DEFAULT_PRESET.hidden_size
    assert source == "defaults"
    assert (s.train.schedule, s.train.warmup_epochs, s.train.weight_decay) == (
        "constant",
        0,
        0.0,
    )
    # The optimiser options override the paper's protocol too.
    argv = ["train", "--out", "x", "--preset", "SelfRegulationSCP1"]
    argv += ["--protocol", "paper", "--epochs", "200", "--schedule", "cosine"]
    argv += ["--warmup-epochs", "5", "--weight-decay", "0.01"]
    s, _ = resolve_preset(parse(argv), None)
    assert (s.train.epochs, s.train.patience, s.train.ties_improve) == (200, 1000, True)
    assert (s.train.schedule, s.train.warmup_epochs, s.train.weight_decay) == (
        "cosine",
        5,
        0.01,
    )


@pytest.mark.slow
def test_solver_options_reach_the_saved_model(tmp_path, capsys):
    """A tiny train run with every option of the parallel solver and the implicit
    step: the checkpoint's model (rebuilt from its recorded config) holds them."""
    from lrc_toolkit.training import load_checkpoint

    out = tmp_path / "run"
    argv = ["train", "--out", str(out), "--epochs", "1", "--hidden", "4"]
    argv += ["--state", "3", "--blocks", "1", "--batch-size", "40", "--no-progress"]
    argv += ["--solver", "parallel", "--discretisation", "implicit"]
    argv += ["--method", "newton", "--damping", "0.5", "--fallback"]
    argv += ["--max-iters", "30", "--rtol", "1e-4", "--atol", "1e-6", "--dt", "0.5"]
    assert cli.main(argv) == 0, capsys.readouterr().err
    expected = lt.ParallelNewton(
        method="newton",
        rtol=1e-4,
        atol=1e-6,
        max_iters=30,
        damping=0.5,
        fallback=lt.Sequential(),
    )
    model, meta = load_checkpoint(out / "seed_2345" / "best.eqx")
    assert model.solver == expected
    assert model.discretisation == lt.ImplicitEuler()
    assert meta["model_config"]["solver"]["damping"] == 0.5
    assert meta["model_config"]["solver"]["fallback"]["type"] == "Sequential"
    assert meta["model_config"]["discretisation"]["type"] == "ImplicitEuler"
    results = json.loads((out / "results.json").read_text())
    assert results["solver"] == "parallel"
    assert model.dt == 0.5 and results["settings"]["dt"] == 0.5


@pytest.mark.parametrize(
    "args, solver",
    [
        ([], lt.ParallelNewton()),
        (["--solver", "sequential"], lt.Sequential()),
        (["--solver", "ode", "--ode-solver", "Heun"], lt.ODE(diffrax.Heun())),
        (["--solver", "auto"], lt.Auto()),
        (["--solver", "ode", "--ode-solver", "Kvaerno5"], lt.ODE(diffrax.Kvaerno5())),
        (
            ["--method", "quasi", "--fallback"],
            lt.ParallelNewton(method="quasi", fallback=lt.Sequential()),
        ),
    ],
)
def test_solver_options_build_the_modules(args, solver):
    parsed = cli.build_parser().parse_args(["train", "--out", "x", *args])
    assert solver_from_args(parsed) == solver


@pytest.mark.parametrize(
    "name, discretisation",
    [
        ("euler", lt.Euler()),
        ("semi-implicit", lt.SemiImplicitEuler()),
        ("implicit", lt.ImplicitEuler()),
        ("closed-form", lt.ClosedForm()),
    ],
)
def test_discretisation_option_builds_the_module(name, discretisation):
    argv = ["train", "--out", "x", "--discretisation", name]
    parsed = cli.build_parser().parse_args(argv)
    assert discretisation_from_args(parsed) == discretisation


@pytest.mark.parametrize(
    "args, option",
    [
        (["--solver", "sequential", "--rtol", "1e-3"], "--rtol"),
        (["--solver", "ode", "--max-iters", "3"], "--max-iters"),
        (["--solver", "auto", "--fallback"], "--fallback"),
    ],
)
def test_newton_options_refused_for_other_solvers(args, option):
    parsed = cli.build_parser().parse_args(["train", "--out", "x", *args])
    with pytest.raises(ValueError, match=f"{option} is an option of --solver parallel"):
        solver_from_args(parsed)


def test_solver_options_rejected_by_parser(tmp_path, capsys):
    for args in (["--solver", "fast"], ["--damping", "0"], ["--method", "exact"]):
        with pytest.raises(SystemExit):
            cli.main(["train", "--out", str(tmp_path), *args])
        assert "error: argument" in capsys.readouterr().err


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


def _add_failing_parser(subparsers):
    """A subcommand whose solve fails inside `jit` (explicit Euler at dt = 100)."""

    def run(args):
        import equinox as eqx
        import jax.numpy as jnp
        import jax.random as jr

        neuron = lt.LRC(3, 2, dtype=jnp.float64, key=jr.key(0))
        solve = eqx.filter_jit(lambda u: lt.solve(neuron, jnp.zeros(3), u, dt=100.0))
        solve(jnp.ones((5, 2))).states.block_until_ready()

    subparsers.add_parser("fail").set_defaults(func=run)


def test_a_failed_solve_prints_cause_and_fix(monkeypatch, capsys):
    """The message and one hint chosen by the RESULTS member; no JAX stack."""
    monkeypatch.setattr(cli, "SUBCOMMANDS", [*cli.SUBCOMMANDS, _add_failing_parser])
    monkeypatch.delenv("LRC_TOOLKIT_DEBUG", raising=False)
    assert cli.main(["fail"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lrc-toolkit fail: error: The step is unstable")
    assert err.count("On the command line:") == 1
    assert "--discretisation semi-implicit or implicit" in err
    assert "Above is the stack" not in err and "Traceback" not in err
    assert "[lrc_toolkit.RESULTS" not in err
    assert "--debug" in err


def test_debug_shows_the_traceback(monkeypatch, capsys):
    import equinox as eqx

    monkeypatch.setattr(cli, "SUBCOMMANDS", [*cli.SUBCOMMANDS, _add_failing_parser])
    with pytest.raises(eqx.EquinoxRuntimeError):
        cli.main(["--debug", "fail"])
    monkeypatch.setenv("LRC_TOOLKIT_DEBUG", "1")
    with pytest.raises(eqx.EquinoxRuntimeError):
        cli.main(["fail"])


@pytest.mark.parametrize("outcome", ["nonfinite_states", "newton_max_iters_reached"])
def test_hints_are_chosen_by_the_member(outcome):
    """Each member gets its own hint, whatever words its message contains (the
    non-finite message also says "unstable")."""
    from lrc_toolkit.cli import _HINTS, _runtime_message

    assert all(hasattr(lt.RESULTS, name) for name in _HINTS)
    error = lt.SolveError(lt.RESULTS[getattr(lt.RESULTS, outcome)], outcome)
    message = _runtime_message(error)
    assert message == f"{error.message} On the command line: {_HINTS[outcome]}"
