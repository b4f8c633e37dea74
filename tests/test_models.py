import dataclasses
import functools
import json

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jax.test_util import check_grads

import lrc_toolkit as lt
from lrc_toolkit._neurons._init import inv_softplus
from lrc_toolkit.models import LrcSSM, NEURONS, PRESETS

from .helpers import slow_after_first, slow_unless


# Tiny models, all of the same structure where possible, so that compiled functions
# are shared between tests.
P, C, H, D, T = 3, 4, 6, 4, 8

# The three views of the liquid layers; with the default `Euler()` discretisation all
# compute the explicit-Euler recurrence.
SOLVERS = {
    "parallel": lt.ParallelNewton(),
    "sequential": lt.Sequential(),
    "ode": lt.ODE(diffrax.Euler()),
}


def _model(key, **kw):
    kw = {"hidden_size": H, "state_size": D, "num_blocks": 1, **kw}
    return LrcSSM(P, C, dtype=jnp.float64, key=key, **kw)


@eqx.filter_jit
def _call(model, x, mask=None, ts=None):
    return model(x, mask, ts=ts)


@eqx.filter_jit
def _per_step_batch(model, xs, masks, ts=None):
    per_step = jax.vmap(lambda x, m, t: model.per_step(x, m, ts=t))
    logits = jax.vmap(lambda x, m, t: model(x, m, ts=t))
    return per_step(xs, masks, ts), logits(xs, masks, ts)


@eqx.filter_jit
def _reference_step(model, states, x_t, dt):
    """One time step of the model's maths, written here: encoder; per block
    LayerNorm, an explicit-Euler step of the neuron's `vector_field`, MLP, residual
    add (to the normalised or the raw block input), LayerNorm; decoder."""
    h = model.encoder(x_t)
    new = []
    for block, x in zip(model.blocks, states):
        u = block.norm_in(h)
        x = x + jnp.asarray(dt, x.dtype) * block.neuron.vector_field(x, u)
        new.append(x)
        skip = u if block.residual == "normalised" else h
        h = block.norm_out(skip + block.mlp(x))
    return tuple(new), model.decoder(h)


def _reference(model, x, dt=1.0):
    """The model's per-step outputs by a plain Python loop over time (independent
    of the solvers and of `LrcSSM.step`); `dt` a scalar or one step size per step.
    Also returns each block's states, shape `(num_blocks, T, D)`."""
    dts = np.broadcast_to(np.asarray(dt), (x.shape[0],))
    states = tuple(jnp.zeros(D, model.dtype) for _ in model.blocks)
    outs, trajectory = [], []
    for x_t, h in zip(x, dts):
        states, out = _reference_step(model, states, x_t, h)
        outs.append(out)
        trajectory.append(jnp.stack(states))
    return jnp.stack(outs), jnp.stack(trajectory, axis=1)


def _steps_of(ts):
    """Δt_k = t_k - t_{k-1}; the first step as long as the second (documented)."""
    ts = np.asarray(ts)
    return np.concatenate([ts[1:2] - ts[:1], np.diff(ts)])


def _random_ts(key, n=T):
    """Irregular, strictly increasing time stamps (steps between 0.1 and 1.5)."""
    steps = jr.uniform(key, (n,), jnp.float64, 0.1, 1.5)
    return 3.0 + jnp.cumsum(steps)


class Leaky(lt.AbstractLiquidNeuron):
    """A user-defined neuron, as in AbstractLiquidNeuron's docstring."""

    state_size: int = eqx.field(static=True)
    input_size: int = eqx.field(static=True)
    jacobian_structure = "diagonal"
    tau: jax.Array
    weight: jax.Array

    def __init__(self, state_size, input_size, *, key):
        self.state_size, self.input_size = state_size, input_size
        self.tau = jnp.full((state_size,), 2.0)
        self.weight = jr.normal(key, (state_size, input_size)) / input_size

    def vector_field(self, x, u):
        return (-x + jnp.tanh(self.weight @ u)) / self.tau


@pytest.mark.parametrize(
    "solver, blocks",
    [
        ("parallel", 1),
        ("sequential", 2),
        pytest.param("ode", 1, marks=pytest.mark.slow),
    ],
)
def test_matches_python_loop_reference(solver, blocks, getkey):
    """With Δt = 0.5 (not the default 1) every solver gives the plain loop."""
    model = _model(getkey(), solver=SOLVERS[solver], num_blocks=blocks, dt=0.5)
    x = jr.normal(getkey(), (T, P))
    ref, _ = _reference(model, x, 0.5)
    np.testing.assert_allclose(
        _call(model, x), jnp.mean(ref, axis=0), rtol=1e-7, atol=1e-9
    )
    # Not a coincidence of Δt: the loop with Δt = 1 differs.
    assert float(jnp.max(jnp.abs(_reference(model, x, 1.0)[0] - ref))) > 1e-3


def test_each_skip_path_matches_the_reference(getkey):
    """`residual="normalised"` (the default) adds the block's MLP output to the
    LayerNorm'd block input, `"input"` to the raw one: each equals the plain loop,
    and the two differ."""
    key, x = getkey(), jr.normal(getkey(), (T, P))
    outs = {}
    for residual in ("normalised", "input"):
        model = _model(key, solver=SOLVERS["sequential"], residual=residual)
        assert model.blocks[0].residual == residual
        outs[residual] = model.per_step(x)
        ref, _ = _reference(model, x)
        np.testing.assert_allclose(outs[residual], ref, rtol=1e-7, atol=1e-9)
    assert LrcSSM(P, C, key=key).blocks[0].residual == "normalised"
    assert float(jnp.max(jnp.abs(outs["normalised"] - outs["input"]))) > 1e-3


@pytest.mark.parametrize(
    "solver", slow_unless(SOLVERS, fast=("parallel", "sequential"))
)
def test_time_stamps_are_per_step_dt(solver, getkey):
    """Irregular time stamps `ts`: every solver steps by Δt_k = t_k - t_{k-1}."""
    model = _model(getkey(), solver=SOLVERS[solver], num_blocks=2)
    x = jr.normal(getkey(), (T, P))
    ts = _random_ts(getkey())
    out = eqx.filter_jit(lambda m, x, ts: m.per_step(x, ts=ts))(model, x, ts)
    ref, _ = _reference(model, x, _steps_of(ts))
    np.testing.assert_allclose(out, ref, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(
        _call(model, x, None, ts), jnp.mean(ref, axis=0), rtol=1e-7, atol=1e-9
    )


@pytest.mark.slow
def test_time_stamp_gradients_agree_between_solvers(getkey):
    """Gradients with respect to the parameters and the time stamps: the parallel
    fixed-point adjoint, the sequential one and autodiff through the ODE solve all
    equal autodiff through `lax.scan`, and finite differences."""
    key, x = getkey(), jr.normal(getkey(), (T, P))
    ts = _random_ts(getkey())
    mask = jnp.arange(T) < 6

    def loss(model, ts):
        return jnp.sum(jnp.sin(model(x, mask, ts=ts)))

    grad = eqx.filter_jit(eqx.filter_grad(loss))
    solvers = [lt.Sequential(autodiff=True), *SOLVERS.values()]
    grads = [grad(_model(key, solver=s), ts) for s in solvers]
    reference = jax.tree.leaves(grads[0])
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in reference)
    for solver, g in zip(solvers[1:], grads[1:]):
        for a, b in zip(jax.tree.leaves(g), reference):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9, err_msg=str(solver))
    # The time-stamp gradient against central finite differences.
    model = _model(key, solver=lt.ParallelNewton())
    f = jax.jit(lambda ts: loss(model, ts))
    check_grads(f, (ts,), order=1, modes=["rev"])


@pytest.mark.parametrize(
    "solver",
    slow_unless(["parallel", "sequential", "ode"], fast=("parallel", "sequential")),
)
def test_padding_is_ignored(solver, getkey):
    """Per-step outputs at valid steps, and the logits, are those of the truncated
    sequence whatever the padding holds (zeros, huge values, NaN)."""
    model = _model(getkey(), solver=SOLVERS[solver])
    lengths = [T, 3, 6]
    xs = jr.normal(getkey(), (3, T, P))
    masks = jnp.arange(T)[None] < jnp.array(lengths)[:, None]
    clean = jnp.where(masks[..., None], xs, 0)
    garbage = jnp.where(masks[..., None], xs, 1e6).at[1, 4, 0].set(jnp.nan)
    outputs = [_per_step_batch(model, v, masks) for v in (clean, garbage)]
    for i, n in enumerate(lengths):
        truncated, _ = _reference(model, xs[i, :n])
        for per_step, logits in outputs:
            np.testing.assert_allclose(per_step[i, :n], truncated, rtol=1e-7, atol=1e-9)
            np.testing.assert_allclose(
                logits[i], jnp.mean(truncated, axis=0), rtol=1e-7, atol=1e-9
            )
    assert jnp.array_equal(outputs[0][1], outputs[1][1])


@pytest.mark.parametrize(
    "solver",
    slow_unless(["parallel", "sequential", "ode"], fast=("parallel", "sequential")),
)
def test_masks_and_time_stamps_together(solver, getkey):
    """Padded sequences with irregular time stamps: the valid steps are those of
    the truncated sequence stepped by its own Δt. The padded stamps continue the
    last step (as `lrc_toolkit.data` pads them)."""
    model = _model(getkey(), solver=SOLVERS[solver])
    lengths = [T, 3, 6]
    xs = jr.normal(getkey(), (3, T, P))
    masks = jnp.arange(T)[None] < jnp.array(lengths)[:, None]
    ts = jnp.stack([_random_ts(getkey()) for _ in lengths])
    padded_ts = []
    for t, n in zip(ts, lengths):
        last = t[n - 1] - t[n - 2]
        steps = jnp.arange(1, T - n + 1, dtype=t.dtype)
        padded_ts.append(t.at[n:].set(t[n - 1] + last * steps))
    ts = jnp.stack(padded_ts)
    per_step, logits = _per_step_batch(
        model, jnp.where(masks[..., None], xs, 0), masks, ts
    )
    for i, n in enumerate(lengths):
        truncated, _ = _reference(model, xs[i, :n], _steps_of(ts[i, :n]))
        np.testing.assert_allclose(per_step[i, :n], truncated, rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(
            logits[i], jnp.mean(truncated, axis=0), rtol=1e-7, atol=1e-9
        )


@pytest.mark.slow
def test_gradients(getkey):
    """Parallel gradients (fixed-point adjoint) are finite, equal autodiff through
    the sequential `lax.scan`, and match finite differences."""
    key, x = getkey(), jr.normal(getkey(), (T, P))
    mask = jnp.arange(T) < 6

    def loss(model, x):
        return jnp.sum(jnp.sin(model(x, mask)))

    grad = eqx.filter_jit(eqx.filter_grad(loss))
    solvers = (lt.ParallelNewton(), lt.Sequential(autodiff=True))
    grads = [grad(_model(key, solver=s), x) for s in solvers]
    leaves = [jax.tree.leaves(g) for g in grads]
    assert all(jnp.all(jnp.isfinite(g)) for g in leaves[0])
    for a, b in zip(*leaves):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)

    model = _model(key)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    f = jax.jit(lambda params, x: loss(eqx.combine(params, static), x))
    check_grads(f, (params, x), order=1, modes=["rev"])


@pytest.mark.parametrize(
    "neuron, method",
    [("stc", None), ("dense-lrc", "dense"), ("dense-lrc", "quasi"), ("leaky", None)],
)
def test_any_neuron(neuron, method, getkey):
    if neuron == "leaky":
        neuron = Leaky
    model = _model(getkey(), neuron=neuron, solver=lt.ParallelNewton(method=method))
    x = jr.normal(getkey(), (T, P))
    ref = jnp.mean(_reference(model, x)[0], axis=0)
    np.testing.assert_allclose(_call(model, x), ref, rtol=1e-6, atol=1e-9)
    assert (model.config is None) == (neuron is Leaky)


def test_factory_with_options(getkey):
    factory = functools.partial(lt.LRC, elastance="none", dtype=jnp.float64)
    model = _model(getkey(), neuron=factory, num_blocks=2)
    # the model's learned time scales wrap the factory's neuron
    assert all(isinstance(b.neuron, lt.TimeScaled) for b in model.blocks)
    assert all(b.neuron.neuron.elastance == "none" for b in model.blocks)
    assert model.config is None


def test_float32_model(getkey):
    model = LrcSSM(
        P,
        C,
        hidden_size=H,
        state_size=D,
        num_blocks=1,
        solver=lt.Sequential(),
        dtype=jnp.float32,
        key=getkey(),
    )
    leaves = jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array))
    assert all(leaf.dtype == jnp.float32 for leaf in leaves)
    x = jr.normal(getkey(), (T, P), dtype=jnp.float32)
    out = _call(model, x)
    assert out.dtype == jnp.float32
    # Inputs are cast to the model's dtype.
    assert jnp.array_equal(out, _call(model, x.astype(jnp.float64)))


def test_regression_outputs_per_step(getkey):
    model = _model(getkey(), task="regression", solver=lt.Sequential())
    x = jr.normal(getkey(), (T, P))
    out = _call(model, x, jnp.arange(T) < 5)
    assert out.shape == (T, C)
    np.testing.assert_allclose(out[:5], _reference(model, x[:5])[0], rtol=1e-7)


# ----------------------------------------------------------------------------------
# Per-block solutions, streaming


@pytest.mark.parametrize("solver", ["parallel", "sequential"])
def test_solutions_per_block(solver, getkey):
    """`model.solutions` returns each block's Solution: the reference loop's states,
    a successful result and (for Newton) the iteration count."""
    model = _model(getkey(), solver=SOLVERS[solver], num_blocks=2, dt=0.5)
    x = jr.normal(getkey(), (T, P))
    sols = eqx.filter_jit(lambda m, x: m.solutions(x))(model, x)
    _, states = _reference(model, x, 0.5)
    assert isinstance(sols, tuple) and len(sols) == 2
    for sol, ref in zip(sols, states):
        assert isinstance(sol, lt.Solution)
        assert sol.result == lt.RESULTS.successful
        np.testing.assert_allclose(sol.states, ref, rtol=1e-7, atol=1e-9)
        if solver == "parallel":
            # Newton from zeros: at least 2 iterations, at most T + 1.
            assert 2 <= int(sol.iterations) <= T + 1
        else:
            assert int(sol.iterations) == 0


STREAMED = [name for name in NEURONS if "cfc" not in name]


def _stream_model(name, key):
    # Δt = 0.2 keeps explicit Euler stable for LTC's fast conductances too. One
    # block (cheaper to compile) except for LRC, which checks the per-block states.
    return LrcSSM(
        2,
        3,
        hidden_size=3,
        state_size=2,
        num_blocks=2 if name == "lrc" else 1,
        neuron=name,
        dt=0.2,
        dtype=jnp.float32,
        key=key,
    )


@eqx.filter_jit
def _per_step_all_solvers(model, x, ts):
    """`per_step` under each solver, in one compilation."""
    return {
        name: eqx.tree_at(lambda m: m.solver, model, solver).per_step(x, ts=ts)
        for name, solver in SOLVERS.items()
    }


@pytest.mark.parametrize("name", slow_after_first(STREAMED))
def test_streaming_step_equals_per_step(name, getkey):
    """`model.step`, called once per sample with the sample's Δt, gives the
    whole-sequence `per_step` outputs at every step (float32, ≤ 1e-6), for every
    solver; the first step from `init_state()`."""
    model = _stream_model(name, getkey())
    n = 6
    x = jr.normal(getkey(), (n, 2), jnp.float32)
    ts = (0.2 * jnp.cumsum(jr.uniform(getkey(), (n,), jnp.float32, 0.5, 1.5))).astype(
        jnp.float32
    )
    dts = jnp.asarray(_steps_of(ts), jnp.float32)
    whole = _per_step_all_solvers(model, x, ts)
    streamed = {}  # the stream once per distinct step map (the solvers share one)
    for solver_name, solver in SOLVERS.items():
        m = eqx.tree_at(lambda m: m.solver, model, solver)
        step_map = type(m._step_map()).__name__
        if step_map not in streamed:
            step = eqx.filter_jit(m.step)
            state = m.init_state()
            assert len(state) == model.num_blocks
            outs = []
            for k in range(n):
                state, out = step(state, x[k], dts[k])
                outs.append(out)
            streamed[step_map] = jnp.stack(outs)
        outs = streamed[step_map]
        assert outs.shape == (n, 3) and outs.dtype == jnp.float32
        for k in range(n):
            diff = float(jnp.max(jnp.abs(outs[k] - whole[solver_name][k])))
            assert diff <= 1e-6, (solver_name, k, diff)


def test_streaming_errors(getkey):
    model = _model(getkey(), num_blocks=2)
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        model.step(model.init_state(), jnp.zeros(P + 1))
    with pytest.raises(ValueError, match="one state per block"):
        model.step(model.init_state()[:1], jnp.zeros(P))
    adaptive = lt.ODE(
        diffrax.Tsit5(), stepsize_controller=diffrax.PIDController(rtol=1e-6, atol=1e-6)
    )
    ode_model = _model(getkey(), solver=adaptive)
    with pytest.raises(ValueError, match="only with its defaults"):
        ode_model.step(ode_model.init_state(), jnp.zeros(P))


# ----------------------------------------------------------------------------------
# Configuration


def test_config_round_trip(getkey):
    model = _model(getkey(), neuron="stc", solver=lt.Sequential(), num_blocks=3)
    rebuilt = LrcSSM.from_config(model.config, key=getkey())
    assert rebuilt.config == model.config
    same = jax.tree.structure(eqx.filter(model, eqx.is_array))
    assert jax.tree.structure(eqx.filter(rebuilt, eqx.is_array)) == same
    with pytest.raises(ValueError, match="Unknown LrcSSM config keys"):
        LrcSSM.from_config({**model.config, "width": 3}, key=getkey())


@pytest.mark.parametrize(
    "solver, discretisation",
    [
        (
            lt.ParallelNewton(
                method="quasi",
                rtol=1e-7,
                atol=1e-8,
                max_iters=7,
                damping=0.5,
                fallback=lt.Sequential(),
            ),
            lt.Euler(),
        ),
        (lt.ParallelNewton(recurrence=lt.SequentialScan()), lt.ImplicitEuler()),
        (
            lt.Sequential(autodiff=True, check_stability=False),
            lt.SemiImplicitEuler(substeps=3),
        ),
        (lt.ODE(diffrax.Heun(), dt0=0.25, interpolation="linear"), lt.Euler()),
        (lt.Auto(), lt.ImplicitEuler(rtol=1e-9, atol=1e-10, max_steps=5)),
        (lt.Sequential(), lt.DiffraxStep(diffrax.Midpoint())),
    ],
)
def test_config_records_solver_and_discretisation(solver, discretisation, getkey):
    """Solver and discretisation survive `config` → JSON → `from_config`."""
    model = _model(getkey(), solver=solver, discretisation=discretisation, dt=0.5)
    config = json.loads(json.dumps(model.config))
    assert config == model.config
    assert isinstance(config["solver"], dict)
    assert isinstance(config["discretisation"], dict)
    rebuilt = LrcSSM.from_config(config, key=getkey())
    assert rebuilt.solver == solver
    assert rebuilt.discretisation == discretisation
    assert rebuilt.dt == 0.5
    assert rebuilt.config == model.config


def test_config_is_none_when_unrecordable(getkey):
    # A Diffrax controller is recorded from its fields, unless one holds an array.
    adaptive = lt.ODE(
        diffrax.Tsit5(), stepsize_controller=diffrax.PIDController(rtol=1e-6, atol=1e-6)
    )
    rebuilt = LrcSSM.from_config(_model(getkey(), solver=adaptive).config, key=getkey())
    assert rebuilt.solver == adaptive
    step_to = lt.ODE(stepsize_controller=diffrax.StepTo(jnp.linspace(0.0, 1.0, 3)))
    assert _model(getkey(), solver=step_to).config is None
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("time",))
    sharded = lt.ParallelNewton(recurrence=lt.ShardedScan(mesh))
    assert _model(getkey(), solver=sharded).config is None


def test_presets_are_table_5():
    table5 = {
        "Heartbeat": (1e-3, 64, 64, 4),
        "SelfRegulationSCP1": (1e-3, 64, 16, 2),
        "SelfRegulationSCP2": (1e-3, 128, 64, 2),
        "EthanolConcentration": (1e-4, 128, 16, 2),
        "MotorImagery": (1e-4, 16, 16, 4),
        "EigenWorms": (1e-4, 64, 16, 4),
    }
    got = {
        k: (p.train.learning_rate, p.hidden_size, p.state_size, p.num_blocks)
        for k, p in PRESETS.items()
    }
    assert got == table5
    assert all(p.train.batch_size == 4 for p in PRESETS.values())


# ----------------------------------------------------------------------------------
# Failures of a liquid layer, stiff neurons


def _with_block_neuron(model, index, neuron):
    return eqx.tree_at(lambda m: m.blocks[index].neuron, model, neuron)


def _leaky_with_tau(tau, key):
    neuron = Leaky(D, H, key=key)
    return eqx.tree_at(lambda n: n.tau, neuron, jnp.full((D,), tau))


@pytest.mark.parametrize("solver", slow_after_first(["parallel", "sequential", "ode"]))
def test_failing_liquid_layer_names_the_block(solver, getkey):
    """A liquid layer whose states become non-finite (a NaN parameter), in the
    forward pass and in a training step, raises an error that names the block and
    the cause, not the (clean) inputs."""
    model = _model(getkey(), neuron=Leaky, solver=SOLVERS[solver], num_blocks=2)
    broken = _with_block_neuron(model, 1, _leaky_with_tau(jnp.nan, getkey()))
    x = jr.normal(getkey(), (T, P))
    message = r"LrcSSM block 1 \(Leaky\).*Cause: The states became NaN"
    with pytest.raises(Exception, match=message) as info:
        jax.block_until_ready(_call(broken, x))
    assert "inputs" not in str(info.value).split("Cause:")[0]
    assert "impute" not in str(info.value)

    loss = lambda m: jnp.sum(m(x) ** 2)
    with pytest.raises(Exception, match=message):
        jax.block_until_ready(eqx.filter_jit(eqx.filter_grad(loss))(broken))
    # The healthy model runs.
    assert bool(jnp.all(jnp.isfinite(_call(model, x))))


def test_unstable_explicit_step_names_the_block_and_the_fix(getkey):
    """A fast time constant (τ = 0.1 at Δt = 1) makes explicit Euler unstable in
    block 1: the error names the block and the instability; ImplicitEuler runs."""
    model = _model(getkey(), neuron=Leaky, solver=lt.Sequential(), num_blocks=2)
    stiff = _with_block_neuron(model, 1, _leaky_with_tau(0.1, getkey()))
    x = jr.normal(getkey(), (T, P))
    with pytest.raises(Exception, match=r"LrcSSM block 1 \(Leaky\).*unstable") as info:
        jax.block_until_ready(_call(stiff, x))
    assert lt.SolveError.from_exception(info.value).outcome == "unstable_step"
    # `solutions` is how the failure is inspected: it reports it and does not raise.
    sols = eqx.filter_jit(lambda m, x: m.solutions(x))(stiff, x)
    assert sols[0].result == lt.RESULTS.successful
    assert sols[1].result == lt.RESULTS.unstable_step
    implicit = eqx.tree_at(lambda m: m.discretisation, stiff, lt.ImplicitEuler())
    assert bool(jnp.all(jnp.isfinite(_call(implicit, x))))


def _scaled_ltc(factor):
    """A factory for LTC neurons with every parameter multiplied by `factor` (the
    positive ones, stored through a softplus, have their value multiplied)."""

    def factory(state_size, input_size, *, key):
        neuron = lt.LTC(state_size, input_size, dtype=jnp.float64, key=key)
        names = [
            f.name
            for f in dataclasses.fields(neuron)
            if eqx.is_inexact_array(getattr(neuron, f.name))
        ]
        values = [
            inv_softplus(factor * jax.nn.softplus(getattr(neuron, n)))
            if n.endswith("_raw")
            else factor * getattr(neuron, n)
            for n in names
        ]
        return eqx.tree_at(lambda m: [getattr(m, n) for n in names], neuron, values)

    return factory


@pytest.mark.slow
def test_implicit_euler_stiff_ltc_in_parallel(getkey):
    """LTC at 3x its biophysical scale is stiff at Δt = 1: the explicit step fails
    (with the cause), while `ImplicitEuler` runs in parallel Newton without the
    sequential fallback and equals the sequential implicit solve."""
    key, x = getkey(), jr.normal(getkey(), (T, P))
    # The raw skip (`residual="input"`) drives block 1 into LTC's stiff range for
    # these inputs; what is checked is the stiff step, not the skip path.
    make = lambda solver, disc: _model(
        key,
        neuron=_scaled_ltc(3.0),
        solver=solver,
        discretisation=disc,
        num_blocks=2,
        residual="input",
    )
    # (Newton's linearisation gives the step factors of a dense neuron; the
    # sequential solver checks the stability of diagonal neurons only.)
    with pytest.raises(
        Exception, match=r"LrcSSM block [01] \(TimeScaled\(LTC\)\).*(unstable|NaN)"
    ):
        jax.block_until_ready(_call(make(lt.ParallelNewton(), lt.Euler()), x))
    newton = lt.ParallelNewton(fallback=lt.Sequential())
    parallel = make(newton, lt.ImplicitEuler())
    sols = eqx.filter_jit(lambda m, x: m.solutions(x))(parallel, x)
    for sol in sols:
        assert sol.result == lt.RESULTS.successful
        assert not bool(sol.stats["fallback"])
        assert int(sol.iterations) >= 2
    sequential = make(lt.Sequential(), lt.ImplicitEuler())
    np.testing.assert_allclose(
        _call(parallel, x), _call(sequential, x), rtol=1e-10, atol=1e-10
    )


def test_errors(getkey):
    model = _model(getkey())
    x = jnp.zeros((T, P))
    with pytest.raises(ValueError, match=r"shape \(T, 3\)"):
        model(jnp.zeros((T, P + 1)))
    # The checks behind __call__ (whose annotations already reject some of these
    # under the test suite's runtime type checker).
    with pytest.raises(ValueError, match="jax.vmap"):
        model._check(jnp.zeros((2, T, P)), None)
    with pytest.raises(ValueError, match="boolean array of shape"):
        model._check(x, jnp.ones(T))
    with pytest.raises(ValueError, match="boolean array of shape"):
        model._check(x, jnp.ones(T - 1, bool))
    with pytest.raises(TypeError, match="floating"):
        model._check(jnp.zeros((T, P), jnp.int32), None)
    with pytest.raises(ValueError, match=r"`ts` must have one time stamp per step"):
        model._steps(T, jnp.arange(T - 1.0))
    with pytest.raises((ValueError, TypeError), match="ts"):
        model(x, ts=jnp.arange(T - 1.0))
    with pytest.raises(ValueError, match="Unknown neuron 'gru2'"):
        _model(getkey(), neuron="gru2")
    # The old string solvers are refused with the modules to use instead.
    with pytest.raises(TypeError, match="solver"):
        _model(getkey(), solver="parallel")
    with pytest.raises(TypeError, match="discretisation"):
        _model(getkey(), discretisation="implicit")
    with pytest.raises((ValueError, TypeError), match="task"):
        _model(getkey(), task="ranking")
    with pytest.raises(ValueError, match="`state_size` must be a positive integer"):
        _model(getkey(), state_size=0)
    with pytest.raises(ValueError, match="`dt` must be a finite positive number"):
        _model(getkey(), dt=-1.0)
    with pytest.raises(ValueError, match="must return a neuron with state_size=4"):
        _model(getkey(), neuron=lambda D, H, *, key: lt.LRC(D + 1, H, key=key))
    with pytest.raises(TypeError, match="must return an `lrc_toolkit.AbstractLiquid"):
        _model(getkey(), neuron=lambda D, H, *, key: None)
    with pytest.raises(ValueError, match="method='newton' needs a neuron"):
        _model(getkey(), neuron="dense-lrc", solver=lt.ParallelNewton(method="newton"))(
            x
        )
    assert set(NEURONS) >= {"lrc", "stc", "dense-lrc"}
