"""`TimeScaled`: learned per-neuron time scales, in every view, with exact gradients."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import pytest

import lrc_toolkit as lt


def _neuron(init="responsive"):
    inner = lt.LRC(6, 3, init=init, key=jr.key(0))
    return lt.TimeScaled(inner, scale_range=(1e-3, 0.5), key=jr.key(1))


def _scan_states(neuron, x0, u, dt):
    """A plain loop of dx_i/dt = scale_i * f_i, written without the wrapper."""
    scale = neuron.max_scale * jax.nn.sigmoid(neuron.logit)

    def f(x, ut):
        x = x + dt * scale * neuron.neuron.vector_field(x, ut)
        return x, x

    return jax.lax.scan(f, x0, u)[1]


def test_scales_log_uniform_in_range():
    n = lt.TimeScaled(
        lt.LRC(400, 2, key=jr.key(0)), scale_range=(1e-3, 0.5), key=jr.key(1)
    )
    logs = jnp.log(n.scale)
    assert jnp.all(n.scale >= 1e-3 * (1 - 1e-6)) and jnp.all(
        n.scale <= 0.5 * (1 + 1e-6)
    )
    # log-uniform: the mean of log(scale) is the midpoint of the log range
    mid = 0.5 * (jnp.log(1e-3) + jnp.log(0.5))
    assert abs(float(jnp.mean(logs) - mid)) < 0.25


@pytest.mark.parametrize(
    "solver",
    [lt.Sequential(), lt.ParallelNewton(), lt.ODE(diffrax.Euler())],
    ids=["sequential", "parallel", "ode"],
)
def test_every_view_equals_the_plain_loop(solver):
    n = _neuron()
    u = jr.normal(jr.key(2), (200, 3))
    x0 = jnp.zeros(6)
    ref = _scan_states(n, x0, u, 0.7)
    got = lt.solve(n, x0, u, solver=solver, dt=0.7).states
    assert jnp.max(jnp.abs(got - ref)) < 1e-10


def test_gradients_equal_autodiff_through_scan():
    n = _neuron()
    u = jr.normal(jr.key(3), (150, 3))
    x0 = jnp.zeros(6)

    def par(n):
        return jnp.sum(jnp.sin(lt.solve(n, x0, u, solver=lt.ParallelNewton()).states))

    def ref(n):
        return jnp.sum(jnp.sin(_scan_states(n, x0, u, 1.0)))

    g1 = eqx.filter_grad(par)(n)
    g2 = eqx.filter_grad(ref)(n)
    assert jnp.max(jnp.abs(g1.logit - g2.logit)) <= 1e-8 * jnp.max(jnp.abs(g2.logit))
    assert jnp.max(jnp.abs(g2.logit)) > 0


def test_structure_follows_the_wrapped_neuron():
    n = _neuron()
    assert n.jacobian_structure == "diagonal"
    assert (n.state_size, n.input_size) == (6, 3)
    lt.check_jacobian_structure(n)


@pytest.mark.parametrize("bad", [(0.0, 0.5), (0.5, 0.1), (0.1, 1.0)])
def test_bad_scale_range(bad):
    with pytest.raises(ValueError, match="scale_range"):
        lt.TimeScaled(lt.LRC(4, 2, key=jr.key(0)), scale_range=bad, key=jr.key(1))


def test_responsive_init_follows_its_input():
    """The slow-start bound: std over time >= 0.3 under N(0, 1) inputs at dt = 1."""
    u = jr.normal(jr.key(1), (512, 16))
    for seed in range(3):
        n = lt.LRC(16, 16, init="responsive", key=jr.key(seed))
        s = lt.solve(n, jnp.zeros(16), u, solver=lt.Sequential()).states[100:]
        assert float(jnp.mean(jnp.std(s, axis=0))) >= 0.3
    ref = lt.LRC(16, 16, init="reference", key=jr.key(0))
    s = lt.solve(ref, jnp.zeros(16), u, solver=lt.Sequential()).states[100:]
    assert float(jnp.mean(jnp.std(s, axis=0))) < 0.05


def test_fast_fraction_starts_the_first_neurons_at_high(getkey):
    neuron = lt.LRC(10, 3, key=getkey())
    scaled = lt.TimeScaled(
        neuron, scale_range=(1e-3, 0.5), fast_fraction=0.3, key=getkey()
    )
    scale = scaled.scale
    assert jnp.allclose(scale[:3], 0.5, rtol=1e-6)
    assert jnp.all(scale[3:] < 0.5) and jnp.all(scale[3:] >= 1e-3 * (1 - 1e-6))
    # the other neurons keep the draws they get without fast neurons
    plain = lt.TimeScaled(neuron, scale_range=(1e-3, 0.5), key=jr.key(0))
    again = lt.TimeScaled(
        neuron, scale_range=(1e-3, 0.5), fast_fraction=0.3, key=jr.key(0)
    )
    assert jnp.allclose(plain.scale[3:], again.scale[3:])
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="fast_fraction"):
            lt.TimeScaled(neuron, fast_fraction=bad, key=getkey())
