"""`LrcSSM`'s learned time scales, neuron initialisation and readout: every view
gives the same model, the options round-trip through `config`, and bad values
are refused with a clear message."""

import json
import types

import diffrax
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import lrc_toolkit as lt
from lrc_toolkit.models import LiquidBlock, LrcSSM, NEURONS
from lrc_toolkit.training import fit, TrainConfig

from .helpers import slow_after_first


def _model(**kwargs):
    kwargs = dict(hidden_size=6, state_size=5, num_blocks=2, key=jr.key(0)) | kwargs
    return LrcSSM(3, 2, **kwargs)


def test_time_scales_wrap_every_block_and_keep_the_neuron():
    plain = _model(neuron_init="responsive")
    scaled = _model(neuron_init="responsive", time_scales=(1e-2, 0.5))
    for p, s in zip(plain.blocks, scaled.blocks, strict=True):
        assert isinstance(s.neuron, lt.TimeScaled)
        # the same key gives the same inner neuron as without time scales
        for a, b in zip(jax.tree.leaves(p.neuron), jax.tree.leaves(s.neuron.neuron)):
            assert jnp.array_equal(a, b)
        scale = s.neuron.scale
        assert jnp.all((scale >= 1e-2 * (1 - 1e-6)) & (scale <= 0.5 * (1 + 1e-6)))
        # the first half start fast (at `high`), the rest spread over the decades
        assert jnp.allclose(scale[:2], 0.5) and not jnp.any(jnp.isclose(scale[3:], 0.5))
        assert float(jnp.std(jnp.log(scale[3:]))) > 0.3


@pytest.mark.slow
@pytest.mark.parametrize("readout", ["mean", "last"])
def test_time_scaled_model_is_the_same_in_every_view(readout, getkey):
    """Parallel Newton, the sequential scan and Diffrax's Euler: the same model, to
    float64 rounding (Diffrax's Euler with dt0 = the step is the Euler recurrence)."""
    kw = dict(time_scales=(1e-3, 0.9), neuron_init="responsive", readout=readout)
    kw |= dict(dtype=jnp.float64)
    x = jr.normal(getkey(), (40, 3))
    mask = jnp.arange(40) < 33
    ts = jnp.cumsum(jr.uniform(getkey(), (40,), minval=0.5, maxval=1.5))
    outs = [
        _model(solver=solver, **kw)(x, mask, ts=ts)
        for solver in (lt.ParallelNewton(), lt.Sequential(), lt.ODE(diffrax.Euler()))
    ]
    for out in outs[1:]:
        assert jnp.max(jnp.abs(out - outs[0])) <= 1e-9


def test_readouts_against_the_per_step_outputs(getkey):
    x = jr.normal(getkey(), (30, 3))
    mask = jnp.arange(30) < 21
    per_step = _model(readout="per_step")
    out = per_step(x, mask)
    assert out.shape == (30, 2)
    last = _model(readout="last")(x, mask)
    assert jnp.allclose(last, out[20], atol=1e-6)
    assert jnp.allclose(_model(readout="last")(x), per_step(x)[29], atol=1e-6)
    mean = _model(readout="mean")(x, mask)
    assert jnp.allclose(mean, np.mean(np.asarray(out)[:21], axis=0), atol=1e-6)
    assert _model().readout == "mean"
    assert _model(task="regression").readout == "per_step"


def test_options_round_trip_through_config():
    model = _model(neuron_init="responsive", time_scales=(2e-3, 0.4), readout="last")
    again = LrcSSM.from_config(model.config, key=jr.key(1))
    assert again.config == model.config == json.loads(json.dumps(model.config))
    assert (again.neuron_init, again.time_scales, again.readout) == (
        "responsive",
        (2e-3, 0.4),
        "last",
    )
    assert isinstance(again.blocks[0].neuron, lt.TimeScaled)
    plain = _model(time_scales=None)
    assert LrcSSM.from_config(plain.config, key=jr.key(1)).time_scales is None


def test_neuron_init_reaches_the_neuron():
    responsive = _model(neuron_init="responsive", time_scales=None).blocks[0].neuron
    reference = _model(neuron_init="reference", time_scales=None).blocks[0].neuron
    # the registry's default for the LRC family is the responsive initialisation
    default = _model(time_scales=None).blocks[0].neuron
    for a, b in zip(jax.tree.leaves(default), jax.tree.leaves(responsive)):
        assert jnp.array_equal(a, b)
    direct = lt.LRC(5, 6, init="responsive", dtype=jnp.float32, key=jr.key(0))
    assert not all(
        jnp.array_equal(a, b)
        for a, b in zip(jax.tree.leaves(responsive), jax.tree.leaves(reference))
    )
    assert type(direct) is type(responsive)
    assert isinstance(_model().blocks[0].neuron, lt.TimeScaled)  # the default


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(time_scales=(0.5, 0.1)), "time_scales"),
        (dict(time_scales=(0.0, 0.1)), "time_scales"),
        (dict(time_scales=(1e-3,)), "time_scales"),
        (dict(neuron="gru", neuron_init="responsive"), "has no `init` option"),
        (dict(neuron_init="sideways"), "init"),
        (
            dict(neuron=lambda D, P, *, key: lt.LRC(D, P, key=key), neuron_init="x"),
            "named neurons only",
        ),
    ],
)
def test_bad_options_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _model(**kwargs)


def test_cfc_keeps_its_closed_form_under_time_scales():
    model = _model(neuron="cfc", time_scales=(1e-2, 0.5))
    assert isinstance(model.discretisation, lt.ClosedForm)
    assert jnp.all(jnp.isfinite(model(jnp.ones((10, 3)))))


def _regression_split(n, T, y_shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, T, 3)).astype(np.float32)
    y = rng.normal(size=(n, *y_shape)).astype(np.float32)
    return types.SimpleNamespace(x=x, y=y, mask=np.ones((n, T), bool))


def test_pooled_regression_refuses_per_step_targets():
    model = _model(task="regression", num_blocks=1, readout="mean", dtype=jnp.float32)
    split = _regression_split(4, 12, (12, 2), 0)
    with pytest.raises(ValueError, match="readout='per_step'"):
        fit(model, split, split, config=TrainConfig(epochs=1), progress=False)


@pytest.mark.slow
def test_pooled_regression_reports_mse_and_mae():
    model = _model(task="regression", num_blocks=1, readout="last", dtype=jnp.float32)
    split = _regression_split(8, 12, (2,), 0)
    result = fit(model, split, split, config=TrainConfig(epochs=1), progress=False)
    last = result.history[-1]
    assert last["val_mse"] >= 0 and last["val_mae"] >= 0
    # MAE^2 <= MSE (Jensen), equality only for constant errors
    assert last["val_mae"] ** 2 <= last["val_mse"] * (1 + 1e-5)


def _tiny_npz(path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 12, 2)).astype(np.float32)
    np.savez(path, x=x, y=rng.integers(0, 2, 30))
    return str(path)


@pytest.mark.parametrize(
    "flag, match",
    [(["0.5", "0.1"], "0 < LOW <= HIGH"), (["abc"], "LOW HIGH"), (["1", "2", "3"], "")],
)
def test_cli_refuses_bad_time_scales_before_writing(flag, match, tmp_path):
    from lrc_toolkit.cli import main

    out = tmp_path / "out"
    argv = ["train", "--data", _tiny_npz(tmp_path / "d.npz"), "--out", str(out)]
    assert main([*argv, "--time-scales", *flag]) != 0
    assert not out.exists()


@pytest.mark.slow
def test_cli_records_the_model_options(tmp_path):
    from lrc_toolkit.cli import main

    out = tmp_path / "out"
    argv = ["train", "--data", _tiny_npz(tmp_path / "d.npz"), "--out", str(out)]
    argv += ["--epochs", "1", "--hidden", "4", "--state", "4", "--blocks", "1"]
    argv += ["--seeds", "1", "--no-progress"]
    assert main([*argv, "--time-scales", "none", "--neuron-init", "reference"]) == 0
    settings = json.loads((out / "results.json").read_text())["settings"]
    assert settings["time_scales"] is None
    assert settings["neuron_init"] == "reference"
    # the default is the model's, read off its signature
    assert main([*argv, "--out", str(tmp_path / "b")]) == 0
    settings = json.loads((tmp_path / "b" / "results.json").read_text())["settings"]
    assert settings["time_scales"] == [1e-3, 1.0] and settings["neuron_init"] is None


def _state_response(neuron, steps=300, settle=100):
    """The std over time of the states under N(0, 1) inputs (what a LayerNorm hands
    a liquid layer), averaged over the state's (real) components."""
    u = jr.normal(jr.key(1), (steps, neuron.input_size), jnp.float32)
    x0 = jnp.zeros(neuron.state_size, getattr(neuron, "state_dtype", jnp.float32))
    states = lt.solve(
        neuron, x0, u, dt=1.0, solver=lt.Sequential(),
        discretisation=neuron.default_discretisation(),
    ).states[settle:]  # fmt: skip
    if jnp.iscomplexobj(states):
        states = jnp.concatenate([states.real, states.imag], axis=-1)
    return float(jnp.mean(jnp.std(states, axis=0)))


@pytest.mark.parametrize("name", ["lrc", "stc", "complex-lrc", "dense-lrc"])
def test_named_lrc_family_starts_responsive(name):
    """The registry's LRC family (complex and dense too) starts from the responsive
    initialisation: its state follows N(0, 1) inputs at dt = 1 (std over time of
    at least 0.1; the paper's initialisation: about 0.001-0.004)."""
    make = NEURONS[name]
    responsive = _state_response(make(8, 8, dtype=jnp.float32, key=jr.key(0)))
    reference = make(8, 8, init="reference", dtype=jnp.float32, key=jr.key(0))
    assert responsive >= 0.1
    assert responsive >= 20 * _state_response(reference)


def _two_frequency_series(n=16, T=200, seed=0):
    rng = np.random.default_rng(seed)
    period = np.where(rng.integers(0, 2, n) == 1, 25.0, 43.0)[:, None, None]
    t = np.arange(T)[None, :, None]
    phase = rng.uniform(0, 2 * np.pi, (n, 1, 2))
    return jnp.asarray(np.sin(2 * np.pi * t / period + phase), jnp.float32)


@pytest.mark.parametrize("seed", slow_after_first([0, 1]))
def test_default_mlps_start_input_sensitive(seed):
    """He-uniform MLPs with zero biases (the default): at initialisation the logits
    already depend on the input (standard deviation across series >= 0.05 on a
    two-channel sine task), where Equinox's initialisation, whose biases make a
    low-dimensional input a near-constant vector after the first LayerNorm, gives
    logits 10x less sensitive (measured 0.007-0.01 against 1.1-1.2)."""
    x = _two_frequency_series(seed=seed)
    sizes = dict(hidden_size=16, state_size=16, dtype=jnp.float32, key=jr.key(seed))
    spread = lambda m: float(jnp.mean(jnp.std(jax.vmap(m)(x), axis=0)))
    he = LrcSSM(2, 2, **sizes)
    equinox = LrcSSM(2, 2, init="equinox", **sizes)
    assert he.init == "he_uniform"
    mlps = [he.encoder, he.decoder, *(b.mlp for b in he.blocks)]
    for layer in (layer for net in mlps for layer in net.layers):
        assert not jnp.any(layer.bias)
        # He-uniform as the reference applies it: `jax.nn.initializers.he_uniform`
        # reads Equinox's (out, in) weight with its (in, out) convention, so the
        # fan is the number of outputs: U(-b, b), b = sqrt(6 / out)
        bound = np.sqrt(6 / layer.out_features)
        largest = float(jnp.max(jnp.abs(layer.weight)))
        assert 0.8 * bound < largest <= bound
    assert spread(he) >= 0.05
    assert spread(he) >= 10 * spread(equinox)
    # A block built alone has the model's default MLPs, and a stale name is refused
    # (not read as Equinox's).
    block = LiquidBlock(4, 3, NEURONS["lrc"], dtype=jnp.float32, key=jr.key(seed))
    assert not any(jnp.any(layer.bias) for layer in block.mlp.layers)
    with pytest.raises(ValueError, match="init"):
        LiquidBlock(
            4, 3, NEURONS["lrc"], init="default", dtype=jnp.float32, key=jr.key(0)
        )
