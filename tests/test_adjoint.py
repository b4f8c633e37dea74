"""Gradients through the fixed-point adjoint: against autodiff through the
sequential `lax.scan` and against finite differences (`check_grads`)."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.test_util
import pytest

import lrc_toolkit as lt

from .helpers import (
    assert_gradients_close,
    data,
    DENSE,
    DIAGONAL,
    slow_after_first,
    weighted_loss,
)


# --------------------------------------------------------------------- gradients


@pytest.mark.parametrize(
    "make,kwargs",
    slow_after_first(
        [
            (DIAGONAL["lrc_input_elastance"], {}),
            (
                DIAGONAL["lrc_symmetric"],
                {"discretisation": lt.DiffraxStep(diffrax.Heun())},
            ),
            (DIAGONAL["stc"], {}),
            (DENSE["dense_lrc"][0], {"method": "dense"}),
            (
                DENSE["ltc"][0],
                {"method": "quasi", "discretisation": lt.SemiImplicitEuler()},
            ),
        ],
        unpack=True,
    ),
)
def test_gradients_match_autodiff_through_scan(make, kwargs, getkey):
    neuron = make(6, 3, jnp.float64, getkey())
    inputs, _ = data(getkey(), 200, 3, jnp.float64)
    x0 = 0.3 * jr.normal(getkey(), (6,))
    dt = jr.uniform(getkey(), (200,), minval=0.5, maxval=1.0)
    solve_kwargs = {k: v for k, v in kwargs.items() if k != "method"}
    newton = lt.ParallelNewton(method=kwargs.get("method"))
    expected = eqx.filter_grad(
        lambda a: weighted_loss(lt.Sequential(autodiff=True), *a, **solve_kwargs)
    )((neuron, x0, inputs, dt))
    got = eqx.filter_jit(
        eqx.filter_grad(lambda a: weighted_loss(newton, *a, **solve_kwargs))
    )((neuron, x0, inputs, dt))
    assert_gradients_close(expected, got)


def test_gradients_pass_check_grads(getkey):
    neuron = lt.LRC(4, 2, key=getkey())
    inputs, _ = data(getkey(), 30, 2, jnp.float64)
    x0 = 0.2 * jr.normal(getkey(), (4,))
    params, static = eqx.partition(neuron, eqx.is_inexact_array)

    def f(params, x0, inputs):
        n = eqx.combine(params, static)
        solver = lt.ParallelNewton(rtol=1e-12, atol=1e-12)
        return lt.solve(n, x0, inputs, solver=solver).states

    jax.test_util.check_grads(f, (params, x0, inputs), order=1, modes=["rev"])
