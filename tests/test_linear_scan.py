import functools
import inspect

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.test_util
import pytest

import lrc_toolkit as lt

from .helpers import python_recurrence, slow_unless, tree_allclose


@pytest.mark.parametrize("scan", ["sequential", "associative"])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("dense", [False, True])
@pytest.mark.parametrize(
    "dtype",
    slow_unless(
        [jnp.float32, jnp.float64, jnp.complex128], fast=(jnp.float64, jnp.complex128)
    ),
)
def test_linear_recurrence_matches_loop(scan, reverse, dense, dtype, getkey):
    T, D = 37, 4
    shape = (T, D, D) if dense else (T, D)
    real = jnp.finfo(dtype).dtype
    a = 0.6 * jr.normal(getkey(), shape, real) / (D if dense else 1)
    b = jr.normal(getkey(), (T, D), real)
    if jnp.issubdtype(dtype, jnp.complexfloating):
        im_a = 0.3 * jr.normal(getkey(), shape, real) / (D if dense else 1)
        a = jax.lax.complex(a, im_a)
        b = jax.lax.complex(b, -0.5 * jr.normal(getkey(), (T, D), real))
    a, b = a.astype(dtype), b.astype(dtype)
    x = lt.linear_recurrence(a, b, reverse=reverse, scan=scan)
    expected = python_recurrence(a, b, reverse)
    tol = 1e-5 if dtype == jnp.float32 else 1e-12
    assert x.dtype == dtype
    assert tree_allclose(x, jnp.asarray(expected), rtol=tol, atol=tol)


def test_linear_recurrence_gradients(getkey):
    a = jr.uniform(getkey(), (20, 3), minval=-0.9, maxval=0.9)
    b = jr.normal(getkey(), (20, 3))
    f = functools.partial(lt.linear_recurrence, scan="sequential")
    jax.test_util.check_grads(f, (a, b), order=1, modes=["rev"])


def test_linear_recurrence_errors():
    a, b = jnp.ones((5, 2)), jnp.ones((5, 2))
    # under the test suite's runtime type checks the Literal annotation answers first
    with pytest.raises((ValueError, TypeError), match="scan"):
        lt.linear_recurrence(a, b, scan="blocked")


@pytest.mark.parametrize(
    "a_shape",
    [(5, 3), (4, 2), (5, 2, 3), (5, 2, 2, 2), (5, 2, 2, 1), (5, 2, 1, 2, 2)],
)
def test_recurrence_shapes_checked(a_shape):
    # b is (5, 2): none of these transitions fits it; one check and one message for
    # both the single-device and the sharded recurrence (unwrapped: the suite's
    # runtime type checks would answer first for most shapes)
    a, b = jnp.ones(a_shape), jnp.ones((5, 2))
    mesh = jax.make_mesh((1,), ("time",))
    for recurrence in (
        inspect.unwrap(lt.linear_recurrence),
        functools.partial(inspect.unwrap(lt.sharded_linear_recurrence), mesh=mesh),
    ):
        with pytest.raises(ValueError, match=r"or \(T, N, k, k\) with N k = D"):
            recurrence(a, b)


def test_auto_scan_picks_sequential_on_cpu():
    from lrc_toolkit._solve.linear_scan import default_scan

    expected = "sequential" if jax.default_backend() == "cpu" else "associative"
    assert default_scan() == expected


SOLVERS = {
    "auto": lt.Auto(),
    "sequential": lt.Sequential(),
    "sequential_autodiff": lt.Sequential(autodiff=True),
    "parallel": lt.ParallelNewton(),
    "parallel_associative": lt.ParallelNewton(recurrence=lt.AssociativeScan()),
    "parallel_sequential_scan": lt.ParallelNewton(recurrence=lt.SequentialScan()),
}


# the fast tier: each gradient path once (the recurrences' variants are checked
# against the loop in test_recurrences_match_loop)
@pytest.mark.parametrize(
    "mode", slow_unless(SOLVERS, fast=("sequential", "sequential_autodiff", "parallel"))
)
def test_solve_modes_match_python_loop_and_finite_differences(mode, getkey):
    from .helpers import python_loop

    solver = SOLVERS[mode]
    neuron = lt.LRC(5, 3, key=getkey())
    inputs = jr.normal(getkey(), (30, 3))
    x0 = 0.1 * jr.normal(getkey(), (5,))
    sol = lt.solve(neuron, x0, inputs, solver=solver)
    assert sol.converged
    assert tree_allclose(sol.states, python_loop(neuron, x0, inputs), atol=1e-9)
    w = jr.normal(getkey(), (30, 5))

    def loss(inputs, x0):
        return jnp.sum(w * lt.solve(neuron, x0, inputs, solver=solver).states)

    jax.test_util.check_grads(loss, (inputs, x0), order=1, modes=["rev"])
    # parameter gradients against autodiff through the plain loop
    g = eqx.filter_grad(
        lambda n: jnp.sum(w * lt.solve(n, x0, inputs, solver=solver).states)
    )(neuron)
    g_ref = eqx.filter_grad(lambda n: jnp.sum(w * python_loop(n, x0, inputs)))(neuron)
    assert tree_allclose(g, g_ref, rtol=1e-7, atol=1e-9)


def test_solve_errors(getkey):
    neuron = lt.LRC(2, 1, key=getkey())
    with pytest.raises((ValueError, TypeError), match="solver"):
        lt.solve(neuron, jnp.zeros(2), jnp.zeros((3, 1)), solver="fast")
    with pytest.raises(TypeError, match="unexpected keyword"):
        lt.solve(neuron, jnp.zeros(2), jnp.zeros((3, 1)), mode="sequential")
    with pytest.raises(TypeError, match="unexpected keyword"):
        lt.solve(neuron, jnp.zeros(2), jnp.zeros((3, 1)), solver=lt.Sequential(), tol=1)


def test_recurrences_match_loop(getkey):
    """The `AbstractRecurrence` modules that `ParallelNewton(recurrence=...)` takes,
    against the plain loop, forwards and reversed, diagonal and dense."""
    for dense in (False, True):
        shape = (23, 3, 3) if dense else (23, 3)
        a = 0.5 * jr.normal(getkey(), shape)
        b = jr.normal(getkey(), (23, 3))
        for recurrence in (lt.AssociativeScan(), lt.SequentialScan()):
            for reverse in (False, True):
                expected = python_recurrence(a, b, reverse)
                got = recurrence(a, b, reverse=reverse)
                assert tree_allclose(got, jnp.asarray(expected), rtol=1e-12, atol=1e-12)
