"""The core: neurons, discretisations and the three solvers, each against an
independent reference (a plain Python loop, finite differences, a tight Tsit5)."""

import dataclasses
import functools

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.test_util
import numpy as np
import pytest

import lrc_toolkit as lt
from lrc_toolkit._neurons._init import inv_softplus

from .helpers import max_abs_diff, python_loop


DIAGONAL = {
    "lrc": lambda D, P, dtype, key: lt.LRC(D, P, dtype=dtype, key=key),
    "lrc_symmetric": lambda D, P, dtype, key: lt.LRC(
        D, P, elastance="symmetric", dtype=dtype, key=key
    ),
    "lrc_input_elastance": lambda D, P, dtype, key: lt.LRC(
        D, P, input_elastance=True, dtype=dtype, key=key
    ),
    "lrc_biophysical": lambda D, P, dtype, key: lt.LRC(
        D, P, init="biophysical", dtype=dtype, key=key
    ),
    "stc": lambda D, P, dtype, key: lt.STC(D, P, dtype=dtype, key=key),
}
DENSE = {
    "dense_lrc": (
        lambda D, P, dtype, key: lt.DenseLRC(D, P, dtype=dtype, key=key),
        lt.Euler(),
    ),
    "ltc": (
        lambda D, P, dtype, key: lt.LTC(D, P, dtype=dtype, key=key),
        lt.SemiImplicitEuler(),
    ),
}
TOL = {jnp.float32: 1e-5, jnp.float64: 1e-9}


def scaled(neuron, factor):
    """Every parameter multiplied by `factor`; positive parameters stored through a
    softplus (fields ending in `_raw`) have their positive value multiplied."""
    names, values = [], []
    for field in dataclasses.fields(neuron):
        value = getattr(neuron, field.name)
        if eqx.is_inexact_array(value):
            names.append(field.name)
            if field.name.endswith("_raw"):
                value = inv_softplus(factor * jax.nn.softplus(value))
            else:
                value = factor * value
            values.append(value)
    return eqx.tree_at(lambda n: [getattr(n, k) for k in names], neuron, values)


def data(key, T, P, dtype):
    ku, kx = jr.split(key)
    return jr.normal(ku, (T, P), dtype), 0.1 * jr.normal(kx, (P,), dtype)


# --------------------------------------------------------------------- the recurrence


@pytest.mark.parametrize("name", list(DIAGONAL) + ["dense_lrc"])
def test_sequential_is_the_euler_recurrence(name, getkey):
    make = DIAGONAL.get(name) or DENSE[name][0]
    neuron = make(6, 3, jnp.float64, getkey())
    inputs = jr.normal(getkey(), (60, 3))
    x0 = jr.normal(getkey(), (6,))
    dt = jr.uniform(getkey(), (60,), minval=0.2, maxval=1.0)
    expected = python_loop(neuron, x0, inputs, np.asarray(dt))
    sol = jax.jit(lambda n: lt.solve_sequential(n, x0, inputs, dt=dt))(neuron)
    assert max_abs_diff(sol.states, expected) < 1e-12
    assert sol.converged


def test_drive_hoisting_is_consistent(getkey):
    for make in DIAGONAL.values():
        neuron = make(5, 4, jnp.float64, getkey())
        x, u = jr.normal(getkey(), (5,)), jr.normal(getkey(), (4,))
        direct = neuron.vector_field(x, u)
        assert max_abs_diff(neuron.driven_vector_field(x, neuron.drive(u)), direct) == 0
        A, b = neuron.affine_form(x, neuron.drive(u))
        assert max_abs_diff(A * x + b, direct) < 1e-14


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


# --------------------------------------------------------- parallel vs sequential


ITERATIONS = {}


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("scale", [1.0, 3.0])
@pytest.mark.parametrize("name", list(DIAGONAL))
def test_parallel_matches_sequential_diagonal(name, scale, dtype, getkey):
    T, D, P = 10_000, 64, 8
    neuron = scaled(DIAGONAL[name](D, P, dtype, getkey()), scale)
    inputs, _ = data(getkey(), T, P, dtype)
    x0 = jnp.zeros(D, dtype)
    seq = jax.jit(lambda n, u: lt.solve_sequential(n, x0, u).states)(neuron, inputs)
    par = jax.jit(lambda n, u: lt.solve_parallel(n, x0, u))(neuron, inputs)
    assert par.converged
    ITERATIONS[(name, scale, jnp.dtype(dtype).name)] = int(par.iterations)
    assert max_abs_diff(par.states, seq) <= TOL[dtype]
    assert int(par.iterations) <= 20


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("scale", [1.0, 3.0])
@pytest.mark.parametrize("name", list(DENSE))
def test_parallel_matches_sequential_dense(name, scale, dtype, getkey):
    T, D, P = 10_000, 16, 4
    make, disc = DENSE[name]
    neuron = scaled(make(D, P, dtype, getkey()), scale)
    inputs, _ = data(getkey(), T, P, dtype)
    x0 = jnp.zeros(D, dtype)
    seq = jax.jit(
        lambda n, u: lt.solve_sequential(n, x0, u, discretisation=disc).states
    )(neuron, inputs)
    solve = jax.jit(
        lambda n, u, **kw: lt.solve_parallel(
            n, x0, u, discretisation=disc, method="dense", max_iters=100, **kw
        ),
        static_argnames=("throw", "fallback"),
    )
    if (name, scale) == ("ltc", 3.0):
        # At 3x its biophysical scale the LTC step is locally expanding (spectral
        # radius of ∂Φ/∂x up to ~18 although the trajectory stays bounded), and exact
        # Newton (DEER) diverges. The solver must say so, never return garbage, and
        # the sequential fallback must give the right answer.
        failed = solve(neuron, inputs, throw=False)
        assert failed.result in (
            lt.RESULTS.newton_nonfinite,
            lt.RESULTS.newton_max_iters_reached,
        )
        with pytest.raises(Exception, match="parallel Newton iteration"):
            solve(neuron, inputs, throw=True).states.block_until_ready()
        par = solve(neuron, inputs, throw=True, fallback="sequential")
        assert bool(par.stats["fallback"])
    else:
        par = solve(neuron, inputs, throw=True)
        assert not bool(par.stats["fallback"])
    assert par.converged
    ITERATIONS[(name, scale, jnp.dtype(dtype).name)] = int(par.iterations)
    assert max_abs_diff(par.states, seq) <= TOL[dtype]


@pytest.mark.parametrize("name", list(DENSE))
def test_quasi_newton_converges_to_the_same_states(name, getkey):
    make, disc = DENSE[name]
    neuron = make(8, 3, jnp.float64, getkey())
    inputs, _ = data(getkey(), 500, 3, jnp.float64)
    x0 = jnp.zeros(8)
    seq = lt.solve_sequential(neuron, x0, inputs, discretisation=disc).states
    quasi = lt.solve_parallel(neuron, x0, inputs, discretisation=disc, method="quasi")
    dense = lt.solve_parallel(neuron, x0, inputs, discretisation=disc, method="dense")
    assert max_abs_diff(quasi.states, seq) <= 1e-8
    assert int(dense.iterations) <= int(quasi.iterations)


@pytest.mark.parametrize(
    "disc",
    [
        lt.DiffraxStep(diffrax.Heun()),
        lt.DiffraxStep(diffrax.Tsit5()),
        lt.SemiImplicitEuler(3),
    ],
)
def test_parallel_matches_sequential_other_discretisations(disc, getkey):
    neuron = lt.LRC(16, 4, key=getkey())
    inputs, _ = data(getkey(), 2000, 4, jnp.float64)
    dt = jr.uniform(getkey(), (2000,), minval=0.5, maxval=1.5)
    x0 = jnp.zeros(16)
    seq = lt.solve_sequential(neuron, x0, inputs, dt=dt, discretisation=disc).states
    par = lt.solve_parallel(neuron, x0, inputs, dt=dt, discretisation=disc)
    assert max_abs_diff(par.states, seq) <= 1e-9


def test_first_k_states_exact_after_k_iterations(getkey):
    """After k Newton iterations from any initial guess the first k states are exact
    (the property that bounds Newton at T iterations)."""
    neuron = scaled(lt.LRC(8, 3, key=getkey()), 6.0)
    inputs, _ = data(getkey(), 40, 3, jnp.float64)
    x0 = jnp.ones(8)
    seq = python_loop(neuron, x0, inputs)
    init = 5 * jr.normal(getkey(), (40, 8))
    for k in (1, 2, 5, 17):
        sol = lt.solve_parallel(neuron, x0, inputs, max_iters=k, init=init, throw=False)
        assert int(sol.iterations) <= k
        done = int(sol.iterations)
        assert max_abs_diff(sol.states[:done], seq[:done]) < 1e-12


def test_vmap_over_sequences(getkey):
    neuron = lt.LRC(8, 3, key=getkey())
    inputs = jr.normal(getkey(), (5, 300, 3))
    inputs = inputs.at[2].multiply(10.0)  # a harder sequence in the batch
    x0s = jr.normal(getkey(), (5, 8))
    batched = jax.jit(jax.vmap(lambda x0, u: lt.solve_parallel(neuron, x0, u)))(
        x0s, inputs
    )
    for i in range(5):
        single = lt.solve_parallel(neuron, x0s[i], inputs[i])
        assert max_abs_diff(batched.states[i], single.states) < 1e-12
        assert int(batched.iterations[i]) == int(single.iterations)
        assert (
            max_abs_diff(single.states, python_loop(neuron, x0s[i], inputs[i])) < 1e-9
        )


# --------------------------------------------------------------------- gradients


def _loss(solver, neuron, x0, inputs, dt, **kwargs):
    states = solver(neuron, x0, inputs, dt=dt, **kwargs).states
    weights = jnp.linspace(-1.0, 1.0, states.size).reshape(states.shape)
    return jnp.sum(weights * jnp.sin(states))


@pytest.mark.parametrize(
    "make,kwargs",
    [
        (DIAGONAL["lrc_input_elastance"], {}),
        (DIAGONAL["lrc_symmetric"], {"discretisation": lt.DiffraxStep(diffrax.Heun())}),
        (DIAGONAL["stc"], {}),
        (DENSE["dense_lrc"][0], {"method": "dense"}),
        (
            DENSE["ltc"][0],
            {"method": "quasi", "discretisation": lt.SemiImplicitEuler()},
        ),
    ],
)
def test_gradients_match_autodiff_through_scan(make, kwargs, getkey):
    neuron = make(6, 3, jnp.float64, getkey())
    inputs, _ = data(getkey(), 200, 3, jnp.float64)
    x0 = 0.3 * jr.normal(getkey(), (6,))
    dt = jr.uniform(getkey(), (200,), minval=0.5, maxval=1.0)
    seq_kwargs = {k: v for k, v in kwargs.items() if k != "method"}
    expected = eqx.filter_grad(lambda a: _loss(lt.solve_sequential, *a, **seq_kwargs))(
        (neuron, x0, inputs, dt)
    )
    got = eqx.filter_jit(
        eqx.filter_grad(lambda a: _loss(lt.solve_parallel, *a, **kwargs))
    )((neuron, x0, inputs, dt))
    for e, g in zip(jax.tree.leaves(expected), jax.tree.leaves(got)):
        assert jnp.all(jnp.abs(e - g) <= 1e-6 * jnp.max(jnp.abs(e)) + 1e-12)


def test_gradients_pass_check_grads(getkey):
    neuron = lt.LRC(4, 2, key=getkey())
    inputs, _ = data(getkey(), 30, 2, jnp.float64)
    x0 = 0.2 * jr.normal(getkey(), (4,))
    params, static = eqx.partition(neuron, eqx.is_inexact_array)

    def f(params, x0, inputs):
        n = eqx.combine(params, static)
        return lt.solve_parallel(n, x0, inputs, rtol=1e-12, atol=1e-12).states

    jax.test_util.check_grads(f, (params, x0, inputs), order=1, modes=["rev"])


# --------------------------------------------------------------------- ODE view


def test_ode_euler_reproduces_the_recurrence(getkey):
    neuron = lt.LRC(16, 4, dtype=jnp.float32, key=getkey())
    inputs, x0 = data(getkey(), 500, 4, jnp.float32)
    x0 = jnp.zeros(16, jnp.float32)
    ts = jnp.arange(1, 501, dtype=jnp.float32)
    ode = lt.solve_ode(neuron, ts, inputs, x0, solver=diffrax.Euler())
    seq = lt.solve_sequential(neuron, x0, inputs)
    assert ode.states.dtype == jnp.float32
    assert max_abs_diff(ode.states, seq.states) <= 1e-6


def test_ode_irregular_times_match_per_step_dt(getkey):
    neuron = lt.LRC(8, 3, key=getkey())
    inputs, _ = data(getkey(), 100, 3, jnp.float64)
    dt = jr.uniform(getkey(), (100,), minval=0.1, maxval=2.0)
    ts = jnp.cumsum(dt)
    x0 = jnp.zeros(8)
    heun = lt.DiffraxStep(diffrax.Heun())
    ode = lt.solve_ode(neuron, ts, inputs, x0, solver=diffrax.Heun(), t0=0.0)
    seq = lt.solve_sequential(neuron, x0, inputs, dt=dt, discretisation=heun)
    assert max_abs_diff(ode.states, seq.states) <= 1e-12


def _order(discretisation, getkey):
    """Measured order of the recurrence's global error at t = 2 against Tsit5."""
    neuron = lt.LRC(8, 3, key=getkey())
    u = jr.normal(getkey(), (3,))
    x0 = jr.normal(getkey(), (8,))
    ref = lt.solve_ode(
        neuron,
        jnp.array([2.0]),
        u[None],
        x0,
        t0=0.0,
        solver=diffrax.Tsit5(),
        stepsize_controller=diffrax.PIDController(rtol=1e-13, atol=1e-13),
    ).states[-1]
    hs = np.array([0.2, 0.1, 0.05, 0.025, 0.0125])
    errors = []
    for h in hs:
        T = int(round(2.0 / h))
        states = lt.solve_sequential(
            neuron, x0, jnp.tile(u, (T, 1)), dt=h, discretisation=discretisation
        ).states
        errors.append(float(jnp.max(jnp.abs(states[-1] - ref))))
    return np.polyfit(np.log(hs), np.log(errors), 1)[0]


def test_euler_converges_at_order_one(getkey):
    assert 0.9 <= _order(lt.Euler(), getkey) <= 1.1


def test_heun_converges_at_order_two(getkey):
    assert 1.85 <= _order(lt.DiffraxStep(diffrax.Heun()), getkey) <= 2.15


@pytest.mark.parametrize("interpolation", ["linear", "cubic"])
def test_ode_interpolations_with_constant_input(interpolation, getkey):
    """For a constant input every interpolation is the same path."""
    neuron = lt.LRC(6, 2, key=getkey())
    inputs = jnp.tile(jr.normal(getkey(), (2,)), (20, 1))
    ts = jnp.linspace(0.5, 10.0, 20)
    x0 = jnp.zeros(6)
    pid = diffrax.PIDController(rtol=1e-10, atol=1e-10)
    a = lt.solve_ode(neuron, ts, inputs, x0, stepsize_controller=pid)
    b = lt.solve_ode(
        neuron, ts, inputs, x0, stepsize_controller=pid, interpolation=interpolation
    )
    assert max_abs_diff(a.states, b.states) < 1e-8


def test_ode_gradients_finite_difference(getkey):
    neuron = lt.LRC(4, 2, key=getkey())
    inputs, _ = data(getkey(), 10, 2, jnp.float64)
    ts = jnp.arange(1.0, 11.0)

    def f(x0, inputs):
        return lt.solve_ode(neuron, ts, inputs, x0, interpolation="linear").states

    jax.test_util.check_grads(f, (jnp.zeros(4), inputs), order=1, modes=["rev"])


# --------------------------------------------------------------- compare_views


def test_compare_views(getkey):
    neuron = lt.LRC(8, 3, key=getkey())
    inputs, _ = data(getkey(), 200, 3, jnp.float64)
    fine = lt.compare_views(neuron, inputs, dt=0.01, repeats=1)
    coarse = lt.compare_views(neuron, inputs, dt=0.1, repeats=1)
    assert fine.parallel_vs_sequential["max"] <= 1e-9
    # The Euler recurrence's distance to the ODE shrinks about linearly with dt.
    ratio = coarse.recurrence_vs_ode["max"] / fine.recurrence_vs_ode["max"]
    assert 5 < ratio < 20
    assert set(fine.seconds) == {"sequential", "parallel", "ode"}
    assert "Newton" in fine.summary()
    import matplotlib

    matplotlib.use("Agg")
    fig = lt.plot_comparison(fine)
    assert len(fig.axes) == 2


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
        lt.solve_sequential(_WrongShape(), jnp.zeros(4), jnp.zeros((3, 2)))


def test_transition_factors_in_unit_interval(getkey):
    """STC with Δt = 1: ∂Φ_i/∂x_i = 1 - σ(f) - (σ'(f) ∂f/∂x) x + ... lies near (0, 1)."""
    neuron = lt.LRC(8, 3, key=getkey())
    inputs, _ = data(getkey(), 100, 3, jnp.float64)
    x0 = jnp.zeros(8)
    states = lt.solve_sequential(neuron, x0, inputs).states
    factors = lt.transition_factors(neuron, x0, states, inputs)
    reference = jax.vmap(jax.jacfwd(lambda x, u: x + neuron.vector_field(x, u)))(
        jnp.concatenate([x0[None], states[:-1]]), inputs
    )
    assert max_abs_diff(factors, jnp.diagonal(reference, axis1=1, axis2=2)) < 1e-14
    assert jnp.all((factors > 0) & (factors < 1))


# --------------------------------------------------------------- linear recurrence


@pytest.mark.parametrize("dense", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
def test_linear_recurrence_matches_loop(dense, reverse, getkey):
    T, D = 37, 3
    a = jr.normal(getkey(), (T, D, D) if dense else (T, D))
    b = jr.normal(getkey(), (T, D))
    x, out = np.zeros(D), [None] * T
    order = range(T - 1, -1, -1) if reverse else range(T)
    for t in order:
        x = (np.asarray(a[t]) @ x if dense else np.asarray(a[t]) * x) + np.asarray(b[t])
        out[t] = x
    got = lt.linear_recurrence(a, b, reverse=reverse)
    assert np.allclose(got, np.stack(out), rtol=1e-10, atol=1e-10)


# --------------------------------------------------------------- hostile inputs


@pytest.fixture
def lrc(getkey):
    return lt.LRC(4, 3, key=getkey())


@pytest.mark.parametrize(
    "solver", [lt.solve_sequential, lt.solve_parallel, "ode"], ids=["seq", "par", "ode"]
)
def test_shape_errors_name_the_problem(solver, lrc):
    if solver == "ode":
        solver = lambda n, x0, u: lt.solve_ode(
            n, jnp.arange(1.0, u.shape[0] + 1), u, x0
        )
    with pytest.raises(ValueError, match=r"3 channels.*input_size=3|has 2 channels"):
        solver(lrc, jnp.zeros(4), jnp.zeros((10, 2)))
    with pytest.raises(ValueError, match=r"must have shape \(T, 3\)"):
        solver(lrc, jnp.zeros(4), jnp.zeros(3))
    with pytest.raises(ValueError, match=r"`x0` must have shape \(4,\)"):
        solver(lrc, jnp.zeros(5), jnp.zeros((10, 3)))
    with pytest.raises(TypeError, match="AbstractLiquidNeuron"):
        solver(lambda x, u: x, jnp.zeros(4), jnp.zeros((10, 3)))


def test_ts_length_mismatch(lrc):
    with pytest.raises(ValueError, match="one time per input sample"):
        lt.solve_ode(lrc, jnp.arange(1.0, 9.0), jnp.zeros((10, 3)), jnp.zeros(4))


def test_dt_shape_mismatch(lrc):
    with pytest.raises(ValueError, match="one value per time step"):
        lt.solve_sequential(lrc, jnp.zeros(4), jnp.zeros((10, 3)), dt=jnp.ones(9))


@pytest.mark.parametrize("solver", [lt.solve_sequential, lt.solve_parallel])
def test_nonfinite_inputs_raise(solver, lrc):
    inputs = jnp.zeros((10, 3)).at[4, 1].set(jnp.nan)
    with pytest.raises(Exception, match="NaN or infinite"):
        jax.jit(lambda u: solver(lrc, jnp.zeros(4), u).states)(inputs)


def test_nonconverged_parallel_solve(getkey):
    neuron = scaled(lt.LRC(8, 3, key=getkey()), 3.0)
    inputs, _ = data(getkey(), 1000, 3, jnp.float64)
    with pytest.raises(Exception, match="did not converge within `max_iters`"):
        jax.jit(
            lambda u: lt.solve_parallel(neuron, jnp.zeros(8), u, max_iters=1).states
        )(inputs)
    sol = lt.solve_parallel(neuron, jnp.zeros(8), inputs, max_iters=1, throw=False)
    assert not sol.converged
    assert sol.result == lt.RESULTS.newton_max_iters_reached


def test_diverging_recurrence_reports_nonfinite(getkey):
    """LTC with explicit Euler at Δt = 1 blows up; Newton reports it."""
    neuron = lt.LTC(8, 3, key=getkey())
    inputs, _ = data(getkey(), 3000, 3, jnp.float64)
    seq = lt.solve_sequential(neuron, jnp.zeros(8), inputs, dt=5.0).states
    assert not jnp.all(jnp.isfinite(seq))
    sol = lt.solve_parallel(
        neuron, jnp.zeros(8), inputs, dt=5.0, method="dense", throw=False
    )
    assert sol.result == lt.RESULTS.newton_nonfinite
    stable = lt.solve_parallel(
        neuron,
        jnp.zeros(8),
        inputs,
        dt=5.0,
        method="dense",
        discretisation=lt.SemiImplicitEuler(),
    )
    assert jnp.all(jnp.isfinite(stable.states))


def test_newton_method_requires_diagonal(getkey):
    with pytest.raises(ValueError, match="method='dense'"):
        lt.solve_parallel(
            lt.DenseLRC(4, 3, key=getkey()),
            jnp.zeros(4),
            jnp.zeros((5, 3)),
            method="newton",
        )


def test_bad_config_values(lrc):
    with pytest.raises(ValueError, match="elastance"):
        lt.LRC(4, 3, elastance="nope", key=jr.key(0))
    with pytest.raises(ValueError, match="max_iters"):
        lt.solve_parallel(lrc, jnp.zeros(4), jnp.zeros((5, 3)), max_iters=0)
    with pytest.raises(ValueError, match="method"):
        lt.solve_parallel(lrc, jnp.zeros(4), jnp.zeros((5, 3)), method="magic")
    with pytest.raises(ValueError, match="init"):
        lt.solve_parallel(lrc, jnp.zeros(4), jnp.zeros((5, 3)), init=jnp.zeros((4, 4)))
    with pytest.raises(ValueError, match="interpolation"):
        lt.solve_ode(
            lrc,
            jnp.arange(1.0, 6.0),
            jnp.zeros((5, 3)),
            jnp.zeros(4),
            interpolation="x",
        )
    with pytest.raises(TypeError, match="discretisation"):
        lt.solve_sequential(
            lrc, jnp.zeros(4), jnp.zeros((5, 3)), discretisation="euler"
        )


# --------------------------------------------------------------- safeguards


def test_fallback_replaces_only_failed_sequences_under_vmap(getkey):
    neuron = lt.LTC(8, 3, key=getkey())
    inputs = jr.normal(getkey(), (3, 500, 3))
    dts = jnp.array([0.02, 8.0, 0.02])  # the middle sequence: explicit Euler blows up
    x0 = jnp.zeros(8)

    def solve(u, h, **kw):
        return lt.solve_parallel(neuron, x0, u, dt=h, method="dense", throw=False, **kw)

    plain = jax.vmap(solve)(inputs, dts)
    safe = jax.vmap(lambda u, h: solve(u, h, fallback="sequential"))(inputs, dts)
    assert [bool(r) for r in plain.converged] == [True, False, True]
    assert [bool(f) for f in safe.stats["fallback"]] == [False, True, False]
    for i in (0, 2):
        assert max_abs_diff(safe.states[i], plain.states[i]) == 0
        assert (
            max_abs_diff(safe.states[i], python_loop(neuron, x0, inputs[i], 0.02))
            < 1e-9
        )
    # The failed one is the plain loop (which itself overflows to inf/nan here), not
    # a silently wrong finite answer.
    reference = lt.solve_sequential(neuron, x0, inputs[1], dt=8.0).states
    assert bool(jnp.all(jnp.isfinite(reference))) == bool(safe.converged[1])


def test_damped_newton_keeps_iterates_bounded(getkey):
    """On a locally expanding recurrence exact Newton overflows; with the Jacobian
    clipped to radius 1 the iterates stay bounded, the exact prefix still grows by
    at least one state per iteration, and it converges to the sequential answer."""
    neuron = scaled(lt.LRC(4, 2, key=getkey()), 8.0)
    inputs, _ = data(getkey(), 300, 2, jnp.float64)
    x0 = jnp.zeros(4)
    seq = lt.solve_sequential(neuron, x0, inputs).states
    factors = lt.transition_factors(neuron, x0, seq, inputs)
    assert jnp.max(jnp.abs(factors)) > 1  # locally expanding somewhere
    sol = lt.solve_parallel(neuron, x0, inputs, damping=1.0)
    assert max_abs_diff(sol.states, seq) < 1e-8
    for k in (3, 10):
        partial = lt.solve_parallel(
            neuron, x0, inputs, damping=1.0, max_iters=k, throw=False
        )
        assert jnp.all(jnp.abs(partial.states) < 1e3)
        assert max_abs_diff(partial.states[:k], seq[:k]) < 1e-10


def test_safeguard_arguments_validated(lrc):
    with pytest.raises(ValueError, match="fallback"):
        lt.solve_parallel(lrc, jnp.zeros(4), jnp.zeros((5, 3)), fallback="pray")
    with pytest.raises(ValueError, match="damping"):
        lt.solve_parallel(lrc, jnp.zeros(4), jnp.zeros((5, 3)), damping=-1.0)


# ------------------------------------------ the accelerator path, tested on the CPU


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("name", ["lrc", "lrc_symmetric", "dense_lrc"])
def test_associative_scan_newton_matches_sequential(name, dtype, getkey):
    """On a CPU the Newton step defaults to a sequential scan; accelerators use
    `jax.lax.associative_scan`. Check that path here too, forward and gradient."""
    associative = functools.partial(lt.linear_recurrence, scan="associative")
    if name in DIAGONAL:
        T, D, P, make, disc = 10_000, 64, 8, DIAGONAL[name], lt.Euler()
    else:
        T, D, P = 10_000, 16, 4
        make, disc = DENSE[name]
    for scale in (1.0, 3.0):
        neuron = scaled(make(D, P, dtype, getkey()), scale)
        inputs, _ = data(getkey(), T, P, dtype)
        x0 = jnp.zeros(D, dtype)
        seq = lt.solve_sequential(neuron, x0, inputs, discretisation=disc).states
        par = eqx.filter_jit(
            lambda n, u: lt.solve_parallel(
                n, x0, u, discretisation=disc, recurrence=associative
            )
        )(neuron, inputs)
        assert max_abs_diff(par.states, seq) <= TOL[dtype]
    if dtype == jnp.float64:
        small = make(6, 3, dtype, getkey())
        u, _ = data(getkey(), 300, 3, dtype)
        x0 = 0.1 * jnp.ones(6, dtype)
        expected = eqx.filter_grad(lambda a: _loss(lt.solve_sequential, *a, 1.0))(
            (small, x0, u)
        )
        got = eqx.filter_grad(
            lambda a: _loss(lt.solve_parallel, *a, 1.0, recurrence=associative)
        )((small, x0, u))
        for e, g in zip(jax.tree.leaves(expected), jax.tree.leaves(got)):
            assert jnp.all(jnp.abs(e - g) <= 1e-6 * jnp.max(jnp.abs(e)) + 1e-12)
