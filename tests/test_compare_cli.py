"""`lrc-toolkit compare` end to end."""

import json

import pytest

from lrc_toolkit.cli import main


def test_compare_writes_figure_and_record(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", "--length", "80", "--dt", "0.5", "--out", str(out)]) == 0
    record = json.loads((out / "compare.json").read_text())
    assert record["length"] == 80 and record["dt"] == 0.5
    assert record["parallel_vs_sequential"]["max"] <= 1e-5
    assert record["iterations"] >= 1
    assert (out / "compare.png").stat().st_size > 0
    assert "parallel vs sequential" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--length", "0"], "positive integer"),
        (["--dt", "-1"], "finite positive number"),
        (["--neuron", "nope"], "invalid choice"),
    ],
)
def test_compare_rejects_bad_values(args, message, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["compare", *args, "--out", str(tmp_path)])
    assert message in capsys.readouterr().err
