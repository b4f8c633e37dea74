"""`lrc-toolkit compare` end to end."""

import json

import pytest

from lrc_toolkit.cli import build_parser, main
from lrc_toolkit.models import NEURONS


TINY = ["--length", "24", "--state", "3", "--inputs", "2"]


@pytest.mark.slow
def test_compare_writes_figure_and_record(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", "--length", "80", "--dt", "0.5", "--out", str(out)]) == 0
    record = json.loads((out / "compare.json").read_text())
    assert record["length"] == 80 and record["dt"] == 0.5
    assert record["parallel_vs_sequential"]["max"] <= 1e-5
    assert record["iterations"] >= 1
    assert record["outcomes"] == {"sequential": "", "parallel": "", "ode": ""}
    # LRC at dt = 0.5 is a stable explicit step: every factor in (0, 1].
    assert 0 < record["max_factor"] <= 1
    assert (out / "compare.png").stat().st_size > 0
    stdout = capsys.readouterr().out
    assert "parallel vs sequential" in stdout and "largest step factor" in stdout


def test_compare_accepts_every_named_neuron():
    parse = build_parser().parse_args
    for name in NEURONS:
        assert parse(["compare", "--neuron", name]).neuron == name


@pytest.mark.slow
@pytest.mark.parametrize(
    "neuron, discretisation",
    [
        ("complex-lrc", "implicit"),
        ("ltc", "semi-implicit"),
        ("cfc", "closed-form"),
        ("gru", "implicit"),
    ],
)
def test_compare_other_neurons(neuron, discretisation, tmp_path):
    """A complex state (ComplexLRC's default implicit step), a dense Jacobian
    (LTC's, with its semi-implicit step), a CfC cell (its closed-form step by default) and a
    gated cell with the implicit step."""
    out = tmp_path / neuron
    argv = ["compare", "--neuron", neuron, *TINY, "--out", str(out)]
    if neuron == "gru":
        argv += ["--discretisation", discretisation]
    assert main(argv) == 0
    record = json.loads((out / "compare.json").read_text())
    assert record["neuron"] == neuron
    assert record["discretisation"] == discretisation
    assert record["outcomes"] == {"sequential": "", "parallel": "", "ode": ""}
    assert record["parallel_vs_sequential"]["max"] <= 1e-5


def test_compare_reports_an_unstable_step(tmp_path, capsys):
    """GRU with dt = 4: the explicit step amplifies what the ODE damps (z dt > 2);
    the record and the output name the failed views and the largest factor."""
    out = tmp_path / "unstable"
    argv = ["compare", "--neuron", "gru", *TINY, "--dt", "4", "--out", str(out)]
    assert main(argv) == 0
    record = json.loads((out / "compare.json").read_text())
    assert record["max_factor"] > 1
    assert "unstable" in record["outcomes"]["sequential"]
    assert "unstable" in record["outcomes"]["parallel"]
    captured = capsys.readouterr()
    assert "sequential failed" in captured.out
    assert "view(s) failed" in captured.err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--length", "0"], "positive integer"),
        (["--dt", "-1"], "finite positive number"),
        (["--neuron", "nope"], "invalid choice"),
        (["--discretisation", "rk4"], "invalid choice"),
    ],
)
def test_compare_rejects_bad_values(args, message, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["compare", *args, "--out", str(tmp_path)])
    assert message in capsys.readouterr().err
