import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jax.test_util import check_grads

import lrc_toolkit as lt
from lrc_toolkit.models import LrcSSM, NEURONS, PRESETS

from .helpers import python_loop


# Tiny models, all of the same structure where possible, so that compiled functions
# are shared between tests.
P, C, H, D, T = 3, 4, 6, 4, 8


def _model(key, **kw):
    kw = {"hidden_size": H, "state_size": D, "num_blocks": 1, **kw}
    return LrcSSM(P, C, dtype=jnp.float64, key=key, **kw)


@eqx.filter_jit
def _call(model, x, mask=None):
    return model(x, mask)


@eqx.filter_jit
def _per_step_batch(model, xs, masks):
    return jax.vmap(model.per_step)(xs, masks), jax.vmap(model)(xs, masks)


def _reference(model, x):
    """The model's forward pass with every liquid layer evaluated by a plain Python
    Euler loop over `vector_field` (tests/helpers.py), independent of the solvers."""
    h = jax.vmap(model.encoder)(x)
    for block in model.blocks:
        u = jax.vmap(block.norm_in)(h)
        states = python_loop(block.neuron, jnp.zeros(D, u.dtype), u)
        h = jax.vmap(block.norm_out)(h + jax.vmap(block.mlp)(states))
    return jax.vmap(model.decoder)(h)


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
    "solver, blocks", [("parallel", 1), ("sequential", 2), ("ode", 1)]
)
def test_matches_python_loop_reference(solver, blocks, getkey):
    model = _model(getkey(), solver=solver, num_blocks=blocks)
    x = jr.normal(getkey(), (T, P))
    ref = _reference(model, x)
    np.testing.assert_allclose(
        _call(model, x), jnp.mean(ref, axis=0), rtol=1e-7, atol=1e-9
    )


@pytest.mark.parametrize("solver", ["parallel", "sequential"])
def test_padding_is_ignored(solver, getkey):
    """Per-step outputs at valid steps, and the logits, are those of the truncated
    sequence whatever the padding holds (zeros, huge values, NaN)."""
    model = _model(getkey(), solver=solver)
    lengths = [T, 3, 6]
    xs = jr.normal(getkey(), (3, T, P))
    masks = jnp.arange(T)[None] < jnp.array(lengths)[:, None]
    clean = jnp.where(masks[..., None], xs, 0)
    garbage = jnp.where(masks[..., None], xs, 1e6).at[1, 4, 0].set(jnp.nan)
    outputs = [_per_step_batch(model, v, masks) for v in (clean, garbage)]
    for i, n in enumerate(lengths):
        truncated = _reference(model, xs[i, :n])
        for per_step, logits in outputs:
            np.testing.assert_allclose(per_step[i, :n], truncated, rtol=1e-7, atol=1e-9)
            np.testing.assert_allclose(
                logits[i], jnp.mean(truncated, axis=0), rtol=1e-7, atol=1e-9
            )
    assert jnp.array_equal(outputs[0][1], outputs[1][1])


def test_gradients(getkey):
    """Parallel gradients (fixed-point adjoint) are finite, equal the sequential
    solver's, and match finite differences."""
    key, x = getkey(), jr.normal(getkey(), (T, P))
    mask = jnp.arange(T) < 6

    def loss(model, x):
        return jnp.sum(jnp.sin(model(x, mask)))

    grad = eqx.filter_jit(eqx.filter_grad(loss))
    grads = [grad(_model(key, solver=s), x) for s in ("parallel", "sequential")]
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
    model = _model(getkey(), neuron=neuron, method=method)
    x = jr.normal(getkey(), (T, P))
    ref = jnp.mean(_reference(model, x), axis=0)
    np.testing.assert_allclose(_call(model, x), ref, rtol=1e-6, atol=1e-9)
    assert (model.config is None) == (neuron is Leaky)


def test_factory_with_options(getkey):
    factory = functools.partial(lt.LRC, elastance="none", dtype=jnp.float64)
    model = _model(getkey(), neuron=factory, num_blocks=2)
    assert all(b.neuron.elastance == "none" for b in model.blocks)
    assert model.config is None


def test_float32_model(getkey):
    model = LrcSSM(
        P,
        C,
        hidden_size=H,
        state_size=D,
        num_blocks=1,
        solver="sequential",
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
    model = _model(getkey(), task="regression", solver="sequential")
    x = jr.normal(getkey(), (T, P))
    out = _call(model, x, jnp.arange(T) < 5)
    assert out.shape == (T, C)
    np.testing.assert_allclose(out[:5], _reference(model, x[:5]), rtol=1e-7)


def test_config_round_trip(getkey):
    model = _model(getkey(), neuron="stc", solver="sequential", num_blocks=3)
    rebuilt = LrcSSM.from_config(model.config, key=getkey())
    assert rebuilt.config == model.config
    same = jax.tree.structure(eqx.filter(model, eqx.is_array))
    assert jax.tree.structure(eqx.filter(rebuilt, eqx.is_array)) == same
    with pytest.raises(ValueError, match="Unknown LrcSSM config keys"):
        LrcSSM.from_config({**model.config, "width": 3}, key=getkey())


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
        k: (p.learning_rate, p.hidden_size, p.state_size, p.num_blocks)
        for k, p in PRESETS.items()
    }
    assert got == table5
    assert all(p.batch_size == 4 for p in PRESETS.values())


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
    with pytest.raises(ValueError, match="Unknown neuron 'gru2'"):
        _model(getkey(), neuron="gru2")
    # (A TypeError from the runtime type checker of the Literal annotations here.)
    with pytest.raises((ValueError, TypeError), match="solver"):
        _model(getkey(), solver="fast")
    with pytest.raises((ValueError, TypeError), match="task"):
        _model(getkey(), task="ranking")
    with pytest.raises(ValueError, match="`state_size` must be a positive integer"):
        _model(getkey(), state_size=0)
    with pytest.raises(ValueError, match="`dt` must be a positive number"):
        _model(getkey(), dt=-1.0)
    with pytest.raises(ValueError, match="must return a neuron with state_size=4"):
        _model(getkey(), neuron=lambda D, H, *, key: lt.LRC(D + 1, H, key=key))
    with pytest.raises(TypeError, match="must return an `lrc_toolkit.AbstractLiquid"):
        _model(getkey(), neuron=lambda D, H, *, key: None)
    with pytest.raises(ValueError, match="method='newton' needs a neuron"):
        _model(getkey(), neuron="dense-lrc", method="newton")(x)
    assert set(NEURONS) >= {"lrc", "stc", "dense-lrc"}
