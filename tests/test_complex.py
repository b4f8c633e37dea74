"""Complex-valued LRC: holomorphic steps, parallel solve and gradients."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lrc_toolkit as lt

from .helpers import max_abs_diff, python_loop


D, P, T = 3, 2, 12


def _setup(getkey, **kwargs):
    neuron = lt.ComplexLRC(D, P, dtype=jnp.float64, key=getkey(), **kwargs)
    x0 = jax.lax.complex(*jax.random.normal(getkey(), (2, D), jnp.float64))
    inputs = jax.random.normal(getkey(), (T, P), jnp.float64)
    return neuron, x0, inputs


def test_parameters_are_real_and_complex_where_asked(getkey):
    neuron = lt.ComplexLRC(
        D, P, complex_parameters=("w_x", "h_x"), dtype=jnp.float32, key=getkey()
    )
    assert all(jnp.isrealobj(leaf) for leaf in jax.tree.leaves(neuron))
    p = neuron.self_synapse
    assert jnp.iscomplexobj(p["w_x"]) and jnp.iscomplexobj(p["h_x"])
    assert jnp.isrealobj(p["sigma_x"]) and jnp.isrealobj(p["mu_x"])
    assert neuron.state_dtype == jnp.complex64
    lt.check_jacobian_structure(neuron)
    with pytest.raises(ValueError, match="may contain only"):
        lt.ComplexLRC(D, P, complex_parameters=("W_u",), key=getkey())
    with pytest.raises(TypeError, match="complex x0"):
        x0, inputs = jnp.zeros(D, jnp.float32), jnp.zeros((T, P), jnp.float32)
        lt.solve(neuron, x0, inputs, solver=lt.Sequential())


def test_step_is_holomorphic(getkey):
    """Cauchy-Riemann: the derivative along a real and an imaginary perturbation
    agree, and equal the JVP with ones that the Newton iteration uses."""
    neuron, x0, inputs = _setup(getkey)
    f = lambda x: neuron.vector_field(x, inputs[0])
    h = 1e-6
    along_real = (f(x0 + h) - f(x0 - h)) / (2 * h)
    along_imag = (f(x0 + 1j * h) - f(x0 - 1j * h)) / (2j * h)
    _, jvp = jax.jvp(f, (x0,), (jnp.ones_like(x0),))
    np.testing.assert_allclose(along_real, along_imag, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(jvp, along_real, rtol=1e-7, atol=1e-9)


def test_real_parameters_on_a_real_state_is_the_lrc(getkey):
    """With no complex parameter and a real initial state the state stays real and
    is the real LRC's."""
    neuron, x0, inputs = _setup(getkey, complex_parameters=())
    lrc = lt.LRC(D, P, dtype=jnp.float64, key=getkey())
    names = ("sigma_u", "mu_u", "g_leak", "W_u", "H_u", "e_leak", "sigma_x", "mu_x")
    names += ("w_x", "h_x", "kappa", "beta")
    lrc = eqx.tree_at(
        lambda m: [getattr(m, n) for n in names],
        lrc,
        [getattr(neuron, n) for n in names],
    )
    x0 = jnp.real(x0)
    states = lt.solve(
        neuron, x0.astype(jnp.complex128), inputs, solver=lt.ParallelNewton()
    ).states
    assert max_abs_diff(jnp.imag(states), jnp.zeros_like(x0)) == 0
    assert max_abs_diff(jnp.real(states), python_loop(lrc, x0, inputs)) <= 1e-12


@pytest.mark.slow
def test_gradients_match_autodiff_through_scan(getkey):
    """Gradients of a real loss of Re(C x) through the parallel solver's fixed-point
    adjoint equal autodiff through the `lax.scan` of `Sequential(autodiff=True)`,
    for the parameters (all real leaves), the complex initial state and the
    inputs."""
    neuron, x0, inputs = _setup(getkey)
    C = jax.random.normal(getkey(), (4, 2 * D), jnp.float64)

    def loss(solver, args):
        neuron, x0, inputs = args
        states = lt.solve(neuron, x0, inputs, solver=solver).states
        y = neuron.as_real(states) @ C.T
        return jnp.sum(jnp.tanh(y) ** 2)

    grads = [
        eqx.filter_grad(lambda a: loss(solver, a))((neuron, x0, inputs))
        for solver in (lt.Sequential(autodiff=True), lt.ParallelNewton())
    ]
    assert max_abs_diff(grads[0], grads[1]) <= 1e-9
    assert float(jnp.max(jnp.abs(grads[0][0].w_x_imag))) > 0


def test_as_real_is_the_real_part_of_a_complex_map(getkey):
    x = jax.lax.complex(*jax.random.normal(getkey(), (2, D), jnp.float64))
    C = jax.lax.complex(*jax.random.normal(getkey(), (2, 4, D), jnp.float64))
    stacked = jnp.concatenate([jnp.real(C), -jnp.imag(C)], axis=1)
    np.testing.assert_allclose(
        stacked @ lt.ComplexLRC.as_real(x), jnp.real(C @ x), rtol=1e-12
    )
