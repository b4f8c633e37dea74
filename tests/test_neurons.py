"""The neurons against the published equations (numpy transcriptions), their
initialisation, and the Jacobian-structure check."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.test_util
import numpy as np
import pytest

import lrc_toolkit as lt

from .helpers import (
    data,
    DIAGONAL,
    max_abs_diff,
    numpy_lrc_field,
    numpy_ltc_field,
)


@pytest.mark.parametrize("name", list(DIAGONAL) + ["lrc_rho"])
def test_drive_hoisting_is_consistent(name, getkey):
    """`vector_field`, `driven_vector_field(x, drive(u))` and `affine_form` against
    the published equations transcribed in numpy (`helpers.numpy_lrc_field`), for
    every elastance (asymmetric, symmetric with |s|, none), the input elastance and
    the rho clamp; not against each other."""
    if name == "lrc_rho":
        neuron = lt.LRC(5, 4, rho=0.8, elastance="symmetric", key=getkey())
    else:
        neuron = DIAGONAL[name](5, 4, jnp.float64, getkey())
    if name == "lrc_symmetric":
        # negative half-widths exercise the |s| of the symmetric elastance
        neuron = eqx.tree_at(lambda n: n.half_width, neuron, -neuron.half_width)
    for _ in range(3):
        x, u = 2 * jr.normal(getkey(), (5,)), 2 * jr.normal(getkey(), (4,))
        direct = neuron.vector_field(x, u)
        assert max_abs_diff(neuron.driven_vector_field(x, neuron.drive(u)), direct) == 0
        expected, A_ref, b_ref = numpy_lrc_field(neuron, x, u)
        if neuron.rho is not None:
            # DESIGN.md / LRC docstring: A = -(1 - rho) - rho * sigma(f) * eps
            A_ref = -(1 - neuron.rho) + neuron.rho * A_ref
            expected = A_ref * np.asarray(x) + b_ref
        A, b = neuron.affine_form(x, neuron.drive(u))
        assert np.allclose(direct, expected, rtol=1e-12, atol=1e-14)
        assert np.allclose(A, A_ref, rtol=1e-12, atol=1e-14)
        assert np.allclose(b, b_ref, rtol=1e-12, atol=1e-14)
        assert max_abs_diff(A * x + b, direct) < 1e-14


def test_ltc_matches_published_equations(getkey):
    """The LTC vector field (Hasani et al. 2021, as in the `LTC` docstring) written
    out synapse by synapse in numpy; `affine_form` against the same split."""
    neuron = lt.LTC(5, 3, key=getkey())
    for _ in range(3):
        x, u = jr.normal(getkey(), (5,)), jr.normal(getkey(), (3,))
        expected, A_ref, b_ref = numpy_ltc_field(neuron, x, u)
        assert np.allclose(neuron.vector_field(x, u), expected, rtol=1e-12, atol=1e-14)
        A, b = neuron.affine_form(x, neuron.drive(u))
        assert np.allclose(A, A_ref, rtol=1e-12, atol=1e-14)
        assert np.allclose(b, b_ref, rtol=1e-12, atol=1e-14)


def test_lrc_matches_published_equations(getkey):
    """The LRC vector field written out independently from DESIGN.md in numpy."""
    n = lt.LRC(4, 3, elastance="symmetric", input_elastance=True, key=getkey())
    x, u = np.asarray(jr.normal(getkey(), (4,))), np.asarray(jr.normal(getkey(), (3,)))
    p = jax.tree.map(np.asarray, n)
    sig = lambda v: 1 / (1 + np.exp(-v))
    s_u = sig(p.sigma_u * (u - p.mu_u))
    s_x = sig(p.sigma_x * (x - p.mu_x))
    f = p.g_leak + p.W_u @ s_u + p.w_x * s_x
    z = p.g_leak + p.H_u @ s_u + p.h_x * s_x
    pre = p.kappa * x + p.K_u @ u + p.beta
    eps = sig(pre + abs(p.half_width)) - sig(pre - abs(p.half_width))
    expected = eps * (-sig(f) * x + p.e_leak * np.tanh(z))
    assert np.allclose(
        n.vector_field(jnp.asarray(x), jnp.asarray(u)), expected, rtol=1e-12
    )


def test_reference_initialisation_range(getkey):
    D = 16
    n = lt.LRC(D, 5, input_elastance=True, elastance="symmetric", key=getkey())
    for leaf in jax.tree.leaves(n):
        assert jnp.all(jnp.abs(leaf) <= 1 / np.sqrt(D))
    bio = lt.LRC(D, 5, init="biophysical", key=getkey())
    assert jnp.all((bio.sigma_x >= 3) & (bio.sigma_x <= 8))
    assert jnp.all((bio.mu_u >= 0.3) & (bio.mu_u <= 0.8))
    assert jnp.all((bio.g_leak >= 0.001) & (bio.g_leak <= 1))
    assert jnp.all((bio.e_leak >= -0.2) & (bio.e_leak <= 0.2))
    assert jnp.all((bio.W_u >= 0.001) & (bio.W_u <= 1))


# --------------------------------------------------------------- structure check


class _Coupled(lt.AbstractLiquidNeuron):
    state_size: int = 4
    input_size: int = 2
    jacobian_structure = "diagonal"

    def vector_field(self, x, u):
        return -x + 0.5 * jnp.roll(x, 1) + jnp.sum(u)


class _WrongShape(lt.AbstractLiquidNeuron):
    state_size: int = 4
    input_size: int = 2
    jacobian_structure = "diagonal"

    def vector_field(self, x, u):
        return -x[:3]


def test_structure_check_rejects_coupled_neuron():
    with pytest.raises(ValueError, match=r"dx_1/dt depends on x_0"):
        lt.check_jacobian_structure(_Coupled())


def test_structure_check_accepts_builtins(getkey):
    for make in DIAGONAL.values():
        lt.check_jacobian_structure(make(6, 3, jnp.float64, getkey()))
    lt.check_jacobian_structure(lt.DenseLRC(4, 2, key=getkey()))


def test_wrong_shape_neuron_rejected():
    with pytest.raises(ValueError, match="must return"):
        lt.check_jacobian_structure(_WrongShape())
    with pytest.raises(ValueError, match="same shape and dtype"):
        lt.solve(_WrongShape(), jnp.zeros(4), jnp.zeros((3, 2)), solver=lt.Sequential())


def test_transition_factors_in_unit_interval(getkey):
    """STC with Δt = 1: ∂Φ_i/∂x_i = 1 - σ(f) - (σ'(f) ∂f/∂x) x + ... lies near (0, 1)."""
    neuron = lt.LRC(8, 3, key=getkey())
    inputs, _ = data(getkey(), 100, 3, jnp.float64)
    x0 = jnp.zeros(8)
    states = lt.solve(neuron, x0, inputs, solver=lt.Sequential()).states
    factors = lt.transition_factors(neuron, x0, inputs, states)
    reference = jax.vmap(jax.jacfwd(lambda x, u: x + neuron.vector_field(x, u)))(
        jnp.concatenate([x0[None], states[:-1]]), inputs
    )
    assert max_abs_diff(factors, jnp.diagonal(reference, axis1=1, axis2=2)) < 1e-14
    assert jnp.all((factors > 0) & (factors < 1))
