"""The ablation switches of LRC (Table 10) and the `ablate` runner."""

import csv
import json

import jax
import jax.numpy as jnp
import pytest

import lrc_toolkit as lt
from lrc_toolkit.cli import main


D, P = 4, 3


@pytest.mark.parametrize(
    "state_dependence, A_depends, b_depends",
    [("full", True, True), ("update", False, True), ("none", False, False)],
)
def test_state_dependence_switches(state_dependence, A_depends, b_depends, getkey):
    """dA/dx vanishes for "update" (A(u), b(x,u)); dA/dx and db/dx for "none"."""
    neuron = lt.LRC(
        D,
        P,
        elastance="none",
        state_dependence=state_dependence,
        dtype=jnp.float64,
        key=getkey(),
    )
    xs = jax.random.normal(getkey(), (5, D), jnp.float64)
    us = jax.random.normal(getkey(), (5, P), jnp.float64)

    def jacobians(x, u):
        return jax.jacfwd(lambda x: neuron.affine_form(x, neuron.drive(u)))(x)

    dA, db = jax.vmap(jacobians)(xs, us)
    assert (float(jnp.max(jnp.abs(dA))) > 1e-3) == A_depends
    assert (float(jnp.max(jnp.abs(db))) > 1e-3) == b_depends
    if not A_depends:
        assert float(jnp.max(jnp.abs(dA))) == 0
    if not b_depends:
        assert float(jnp.max(jnp.abs(db))) == 0


def test_ablation_needs_elastance_none(getkey):
    with pytest.raises(ValueError, match="elastance='none'"):
        lt.LRC(D, P, state_dependence="update", key=getkey())


@pytest.mark.slow
def test_ablate_end_to_end(tmp_path, capsys):
    """`lrc-toolkit ablate` on BasicMotions with CI-sized settings: a table of
    mean ± std per variant, a CSV and a JSON with Newton iteration counts."""
    out = tmp_path / "ablate"
    argv = ["ablate", "--dataset", "BasicMotions", "--variants", "gru", "dense-lrc"]
    argv += ["--seeds", "2345", "--blocks", "1", "--state", "4", "--hidden", "8"]
    argv += ["--epochs", "1", "--batch-size", "32", "--lr", "1e-3"]
    argv += ["--out", str(out), "--no-progress"]
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert "GruSSM" in table and "dense-Jac. LRC" in table
    assert "BasicMotions" in table and "±" in table
    with open(out / "ablation.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    runs = [r for r in rows if r["seed"] == "2345"]
    assert [r["variant"] for r in runs] == ["gru", "dense-lrc"]
    for r in runs:
        assert 0 <= float(r["test_accuracy"]) <= 1
        assert float(r["newton_iterations"]) >= 1
    assert {r["seed"] for r in rows} == {"2345", "mean", "std"}
    results = json.loads((out / "ablation.json").read_text())
    assert results["setup"]["num_blocks"] == 1
    assert set(results["summary"]) == {"gru", "dense-lrc"}


def test_ablate_rejects_unknown_variant(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["ablate", "--variants", "nope", "--out", str(tmp_path)])
    assert "invalid choice: 'nope'" in capsys.readouterr().err


def test_variants_are_the_named_neurons():
    """One variant per neuron of the registry (and Table 9's exact-Newton one)."""
    from lrc_toolkit.ablation import _LABELS, VARIANTS
    from lrc_toolkit.models import NEURONS

    assert all(VARIANTS[name].neuron == name for name in NEURONS)
    assert set(VARIANTS) - set(NEURONS) == {"dense-lrc-newton"}
    assert set(_LABELS) <= set(NEURONS)
    assert VARIANTS["dense-lrc"].method == "quasi"
    assert VARIANTS["dense-lrc-newton"].method == "dense"


def test_mean_std_is_the_population_std():
    from lrc_toolkit._stats import mean_std

    assert mean_std([0.5]) == (0.5, 0.0)
    assert mean_std([1.0, 3.0]) == (2.0, 1.0)
    assert mean_std([1.0, 2.0, 6.0]) == pytest.approx((3.0, (14 / 3) ** 0.5))
