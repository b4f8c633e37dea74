"""The paper's guarantees as property tests over random LRC parameters (hypothesis)."""

import equinox as eqx
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from hypothesis import given, settings

import lrc_toolkit as lt
from lrc_toolkit.models import LrcSSM
from lrc_toolkit.training import TrainConfig

from .helpers import python_loop


SETTINGS = settings(max_examples=12, deadline=None, derandomize=True)
# `rho` is a static field of LRC (one compilation per value): three values, each
# drawn with several seeds and scales.
RHOS = st.sampled_from((0.5, 0.8, 0.99))
seeds = st.integers(0, 2**31 - 1)
scales = st.floats(0.5, 4.0)
elastances = st.sampled_from(["asymmetric", "symmetric", "none"])


def _neuron(seed, scale, D=6, P=3, **kwargs):
    n = lt.LRC(D, P, key=jr.key(seed), **kwargs)
    return jax.tree.map(lambda p: scale * p if eqx.is_inexact_array(p) else p, n)


def _inputs(seed, T=50, P=3, scale=2.0):
    return scale * jr.normal(jr.key(seed + 1), (T, P))


@SETTINGS
@given(seeds, scales, elastances, st.booleans())
def test_jacobian_is_diagonal(seed, scale, elastance, input_elastance):
    if elastance == "none":
        input_elastance = False
    n = _neuron(seed, scale, elastance=elastance, input_elastance=input_elastance)
    lt.check_jacobian_structure(n, key=jr.key(seed), num_points=4, tol=0.0)


@SETTINGS
@given(seeds, scales)
def test_asymmetric_transition_factor_in_unit_interval(seed, scale):
    """With asymmetric elastance and Δt = 1 the frozen factor 1 + A = 1 - σ(f)ε lies
    in (0, 1), at every state and input."""
    n = _neuron(seed, scale)
    x = 3 * jr.normal(jr.key(seed + 2), (64, 6))
    u = _inputs(seed, 64)
    A, _ = jax.vmap(lambda x, u: n.affine_form(x, n.drive(u)))(x, u)
    factor = 1 + A
    assert jnp.all((factor > 0) & (factor < 1))


@SETTINGS
@given(seeds, scales, st.floats(0.5, 0.99), elastances)
def test_rho_clamp_bounds_the_transition_factor(seed, scale, rho, elastance):
    n = _neuron(seed, scale, rho=rho, elastance=elastance)
    x = 3 * jr.normal(jr.key(seed + 2), (64, 6))
    u = _inputs(seed, 64)
    A, _ = jax.vmap(lambda x, u: n.affine_form(x, n.drive(u)))(x, u)
    factor = 1 + A
    assert jnp.all((factor >= 0) & (factor <= rho + 1e-12))


def _frozen(n, x0, u):
    """The states and the frozen factors λ_t = 1 + A_t, offsets b_t of the LRC's
    Euler step along its trajectory (x_t = λ_t x_{t-1} + b_t there exactly)."""
    states = lt.solve(n, x0, u, solver=lt.Sequential()).states
    prev = jnp.concatenate([x0[None], states[:-1]])
    A, b = jax.vmap(lambda x, v: n.affine_form(x, n.drive(v)))(prev, u)
    return states, 1 + A, b


@pytest.mark.slow
@SETTINGS
@given(seeds, scales, RHOS)
def test_lemma_1_rho_contraction(seed, scale, rho):
    """Lemma 1: the frozen update x -> λ_t x + b_t with λ_t ≤ ρ (λ_t, b_t taken from
    the LRC along a trajectory) contracts distances by ρ. The frozen recurrence is
    run by the library's `linear_recurrence` (both scans), from the trajectory's
    x_0 (where it reproduces the solver's states) and from two other states."""
    n = _neuron(seed, scale, rho=rho)
    u = _inputs(seed)
    x0 = jnp.zeros(6)
    states, lam, b = _frozen(n, x0, u)
    starts = jnp.concatenate([x0[None], jr.normal(jr.key(seed + 3), (2, 6))])
    for scan in ("sequential", "associative"):
        # x_t = λ_t x_{t-1} + b_t from x_0 = s: the first offset carries λ_1 s.
        runs = [
            lt.linear_recurrence(lam, b.at[0].add(lam[0] * s), scan=scan)
            for s in starts
        ]
        np.testing.assert_allclose(runs[0], states, rtol=0, atol=1e-12)
        x = jnp.concatenate([starts[1][None], runs[1]])
        y = jnp.concatenate([starts[2][None], runs[2]])
        dist = jnp.linalg.norm(x - y, axis=1)
        assert jnp.all(dist[1:] <= rho * dist[:-1] + 1e-12)


class _Frozen(lt.AbstractLiquidNeuron):
    """The frozen LRC recurrence as a neuron: input (λ_t − 1, b_t), Euler step with
    Δt = 1 gives x_t = λ_t x_{t-1} + b_t. Its b-input cotangents are the adjoint
    states ∂L/∂x_t of any solve."""

    state_size: int = 6
    input_size: int = 12
    jacobian_structure = "diagonal"

    def vector_field(self, x, u):
        return u[:6] * x + u[6:]


@jax.jit
def _adjoint_states(lam, b, x0, w):
    """∂L/∂x_t for L = w · tanh(x_T), t = 1..T, from the library's fixed-point
    adjoint (Sequential and ParallelNewton) and its autodiff through the scan."""

    def loss(b, solver):
        u = jnp.concatenate([lam - 1, b], axis=1)
        x = lt.solve(_Frozen(), x0, u, solver=solver).states
        return jnp.dot(w, jnp.tanh(x[-1]))

    solvers = (lt.Sequential(), lt.ParallelNewton(), lt.Sequential(autodiff=True))
    return [jax.grad(loss)(b, solver) for solver in solvers]


@pytest.mark.slow
@SETTINGS
@given(seeds, scales, RHOS)
def test_theorem_1_gradient_bound(seed, scale, rho):
    """Theorem 1: with the frozen factors λ_t ≤ ρ, a loss of x_T only has
    ‖∂L/∂x_τ‖ ≤ ρ^(T−τ) ‖∂L/∂x_T‖, checked on the adjoint states computed by the
    solvers' own gradients (fixed-point adjoint, Newton's, autodiff)."""
    T = 30
    n = _neuron(seed, scale, rho=rho)
    u = _inputs(seed, T)
    x0 = jnp.zeros(6)
    states, lam, b = _frozen(n, x0, u)
    w = jr.normal(jr.key(seed + 4), (6,))
    for g in _adjoint_states(lam, b, x0, w):
        g_T = jnp.linalg.norm(g[-1])
        # ∂L/∂x_T = w ⊙ sech²(x_T), as written by hand
        expected = w / jnp.cosh(states[-1]) ** 2
        # Relative to the vector's scale: an entry near zero (sech^2 of a large
        # state) carries round-off of the others' size, not its own.
        np.testing.assert_allclose(
            g[-1], expected, rtol=1e-12, atol=1e-12 * float(jnp.max(jnp.abs(expected)))
        )
        for tau in range(T - 1):  # g[tau] is ∂L/∂x_{tau+1}
            bound = rho ** (T - 1 - tau) * g_T
            assert jnp.linalg.norm(g[tau]) <= bound * (1 + 1e-12) + 1e-15
        assert jnp.linalg.norm(g[0]) > 0


def test_true_jacobian_can_exceed_rho():
    """The paper's caveat: the bound uses the frozen factor; the true step Jacobian
    includes the state dependence of f, z and ε and is not bounded by ρ."""
    rho = 0.9
    worst = 0.0
    for seed in range(5):
        n = _neuron(seed, 4.0, rho=rho)
        u = _inputs(seed, 200, scale=4.0)
        states = lt.solve(n, jnp.zeros(6), u, solver=lt.Sequential()).states
        factors = lt.transition_factors(n, jnp.zeros(6), u, states)
        worst = max(worst, float(jnp.max(jnp.abs(factors))))
    assert worst > rho


@pytest.mark.slow
@SETTINGS
# `max_iters` is static (one compilation per value): three values of k, each
# drawn with several seeds and scales.
@given(seeds, scales, st.sampled_from((1, 3, 12)))
def test_first_k_states_exact_after_k_newton_iterations(seed, scale, k):
    n = _neuron(seed, 3 * scale)
    u = _inputs(seed, 25)
    x0 = jr.normal(jr.key(seed + 5), (6,))
    init = 5 * jr.normal(jr.key(seed + 6), (25, 6))
    reference = python_loop(n, x0, u)
    solver = lt.ParallelNewton(max_iters=k)
    sol = lt.solve(n, x0, u, solver=solver, init=init, throw=False)
    done = int(sol.iterations)
    assert done <= k
    np.testing.assert_allclose(sol.states[:done], reference[:done], rtol=0, atol=1e-11)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_stress_million_steps(dtype):
    """T = 1 000 000 in one parallel solve agrees with lax.scan, without NaN."""
    T, D = 1_000_000, 16
    n = lt.LRC(D, 4, dtype=dtype, key=jr.key(0))
    u = jr.normal(jr.key(1), (T, 4), dtype)
    x0 = jnp.zeros(D, dtype)
    seq = jax.jit(lambda u: lt.solve(n, x0, u, solver=lt.Sequential()).states)(u)
    par = jax.jit(lambda u: lt.solve(n, x0, u, solver=lt.ParallelNewton()))(u)
    assert jnp.all(jnp.isfinite(par.states))
    assert par.converged
    tol = 1e-5 if dtype == jnp.float32 else 1e-9
    assert float(jnp.max(jnp.abs(par.states - seq))) <= tol


def _scaled(n, scale):
    return jax.tree.map(lambda p: scale * p if eqx.is_inexact_array(p) else p, n)


# Every built-in affine neuron documents A <= 0 (a damping forget term). ComplexLRC:
# with real parameters on a complex state its A is that of LRC, so Re A <= 0 at any
# real-valued state (complex parameters rotate the sigmoid and void the guarantee).
AFFINE = {
    "lrc_asymmetric": lambda k: lt.LRC(6, 3, key=k),
    "lrc_symmetric": lambda k: lt.LRC(6, 3, elastance="symmetric", key=k),
    "lrc_symmetric_input": lambda k: lt.LRC(
        6, 3, elastance="symmetric", input_elastance=True, key=k
    ),
    "lrc_rho": lambda k: lt.LRC(6, 3, elastance="symmetric", rho=0.9, key=k),
    "stc": lambda k: lt.STC(6, 3, key=k),
    "complex_symmetric": lambda k: lt.ComplexLRC(
        6, 3, elastance="symmetric", complex_parameters=(), key=k
    ),
    "complex_asymmetric": lambda k: lt.ComplexLRC(6, 3, complex_parameters=(), key=k),
    "dense_lrc": lambda k: lt.DenseLRC(6, 3, key=k),
    "ltc": lambda k: lt.LTC(6, 3, key=k),
    "gru": lambda k: lt.GRUNeuron(6, 3, key=k),
    "mgu": lambda k: lt.MGUNeuron(6, 3, key=k),
    "lstm": lambda k: lt.LSTMNeuron(6, 3, key=k),
}


@pytest.mark.parametrize("name", list(AFFINE))
@SETTINGS
@given(seed=seeds, scale=scales, x_scale=st.floats(0.0, 5.0))
def test_affine_forget_term_is_non_positive(name, seed, scale, x_scale):
    """A <= 0 (Re A <= 0 for a complex state) at random parameters, states and
    inputs: a neuron whose symmetric elastance lost its |half_width| fails."""
    n = _scaled(AFFINE[name](jr.key(seed)), scale)
    kx, ku = jr.split(jr.key(seed + 7))
    x = x_scale * jr.normal(kx, (4, 6))
    u = 2.0 * jr.normal(ku, (4, 3))
    x = x.astype(getattr(n, "state_dtype", x.dtype))
    A, _ = jax.vmap(lambda x, u: n.affine_form(x, n.drive(u)))(x, u)
    assert float(jnp.max(jnp.real(A))) <= 0


def test_complex_symmetric_elastance_at_zero():
    """The defect of issue 19: ComplexLRC's symmetric elastance at x = 0 (reference
    init, all self-synapses complex) had max Re A = +0.031; LRC's is <= 0."""
    for seed in range(8):
        n = lt.ComplexLRC(16, 3, elastance="symmetric", key=jr.key(seed))
        A, _ = n.affine_form(jnp.zeros(16, n.state_dtype), n.drive(jnp.zeros(3)))
        assert float(jnp.max(A.real)) <= 0


BUILT_IN = {
    "LRC": lt.LRC,
    "STC": lt.STC,
    "ComplexLRC": lt.ComplexLRC,
    "DenseLRC": lt.DenseLRC,
    "LTC": lt.LTC,
    "GRUNeuron": lt.GRUNeuron,
    "MGUNeuron": lt.MGUNeuron,
    "LSTMNeuron": lt.LSTMNeuron,
}


@pytest.mark.parametrize("name", list(BUILT_IN))
@pytest.mark.parametrize("bad", [0, -1, True, 2.5])
@pytest.mark.parametrize("which", ["state_size", "input_size"])
def test_sizes_checked(name, bad, which):
    """One size check for every neuron (issue 19: `DenseLRC(0, 3)` raised
    ZeroDivisionError, `LTC(True, 3)` was accepted). A float may instead be stopped
    by the suite's runtime type checker, which also names the argument."""
    sizes = {"state_size": 3, "input_size": 2, which: bad}
    error = (ValueError, TypeError) if isinstance(bad, float) else ValueError
    message = which if isinstance(bad, float) else f"`{which}` must be a positive"
    with pytest.raises(error, match=message):
        BUILT_IN[name](sizes["state_size"], sizes["input_size"], key=jr.key(0))


def _lyapunov_every(value):
    neuron = lt.LRC(3, 2, key=jr.key(0))
    inputs = jnp.zeros((4, 2))
    lt.lyapunov_exponent(neuron, jnp.zeros(3), inputs, reorthonormalise_every=value)


# Every other integer option of the library, by the name its message gives: one
# check (`_checks.check_integer`), one message.
INTEGER_OPTIONS = {
    "max_iters": lambda v: lt.ParallelNewton(max_iters=v),
    "chunk_size": lambda v: lt.ParallelNewton(chunk_size=v),
    "substeps": lambda v: lt.SemiImplicitEuler(substeps=v),
    "max_steps": lambda v: lt.ImplicitEuler(max_steps=v),
    "backbone_units": lambda v: lt.CfC(3, 2, backbone_units=v, key=jr.key(0)),
    "epochs": lambda v: TrainConfig(epochs=v),
    "reorthonormalise_every": _lyapunov_every,
}


@pytest.mark.parametrize("name", list(INTEGER_OPTIONS))
@pytest.mark.parametrize("bad", [0, -2, True])
def test_integer_options_checked(name, bad):
    with pytest.raises(ValueError, match=f"`{name}` must be a positive integer, got"):
        INTEGER_OPTIONS[name](bad)


# The positive real options, by name: one check (`_checks.check_positive`).
POSITIVE_OPTIONS = {
    "dt": lambda v: LrcSSM(3, 2, dt=v, key=jr.key(0)),
    "learning_rate": lambda v: TrainConfig(learning_rate=v),
    "max_scale": lambda v: lt.TimeScaled(
        lt.LRC(3, 2, key=jr.key(0)), max_scale=v, key=jr.key(1)
    ),
}


@pytest.mark.parametrize("name", list(POSITIVE_OPTIONS))
@pytest.mark.parametrize("bad", [0.0, -1.0, float("inf"), float("nan")])
def test_positive_options_checked(name, bad):
    with pytest.raises(ValueError, match=f"`{name}` must be a finite positive number"):
        POSITIVE_OPTIONS[name](bad)


def test_zero_backbone_layers_allowed_and_negative_named():
    assert lt.CfC(3, 2, backbone_layers=0, key=jr.key(0)).backbone == ()
    with pytest.raises(
        ValueError, match=r"`backbone_layers` must be a non-negative integer \(0: no"
    ):
        lt.CfC(3, 2, backbone_layers=-1, key=jr.key(0))


@pytest.mark.parametrize("cls", [lt.LTC, lt.DenseLRC])
def test_field_and_diagonal(cls, getkey):
    """The dense neurons' field and Jacobian diagonal (from their self-synapses)
    equal the vector field and the diagonal of the full Jacobian."""
    neuron = _scaled(cls(5, 3, key=getkey()), 2.0)
    x, u = jr.normal(getkey(), (5,)), jr.normal(getkey(), (3,))
    drive = neuron.drive(u)
    f, diag = neuron.field_and_diagonal(x, drive)
    jac = jax.jacfwd(neuron.driven_vector_field)(x, drive)
    assert float(jnp.max(jnp.abs(f - neuron.vector_field(x, u)))) < 1e-12
    assert float(jnp.max(jnp.abs(diag - jnp.diagonal(jac)))) < 1e-12


STEP_NEURONS = {
    **{name: cls for name, cls in BUILT_IN.items() if name != "ComplexLRC"},
    "FitzHughNagumo": lt.FitzHughNagumo,
    "CfC": lt.CfC,
    "TimeScaled(LTC)": lambda D, P, key: lt.TimeScaled(lt.LTC(D, P, key=key), key=key),
}


STEPS = {
    "euler": lt.Euler(),
    "semi-implicit": lt.SemiImplicitEuler(),
    "semi-implicit-2": lt.SemiImplicitEuler(substeps=2),
}
NO_AFFINE_FORM = ("FitzHughNagumo", "CfC")  # the semi-implicit step needs one


@pytest.mark.parametrize(
    "name, step",
    [
        (name, step)
        for name in STEP_NEURONS
        for step in STEPS
        if step == "euler" or name not in NO_AFFINE_FORM
    ],
)
def test_step_and_check_is_the_step_jacobian_diagonal(name, step, getkey):
    """`step_and_check` (what `Sequential`'s stability check reads, with the
    cheap forms of `Euler`, `SemiImplicitEuler` and the one-JVP neurons) equals the
    step, the diagonal of the step's full Jacobian (jacfwd) and the documented
    instability rule (|factor| > 1 where df_i/dx_i < 0, from the field's jacfwd),
    at random states of a neuron with doubled parameters (far from the initial
    fixed point), at small and large steps (where some factors amplify)."""
    neuron = _scaled(STEP_NEURONS[name](6, 3, key=getkey()), 2.0)
    _check_step_and_check(neuron, STEPS[step], getkey)


def _check_step_and_check(neuron, disc, getkey, n=16):
    """Asserts `step_and_check` against jacfwd at `n` random states and inputs,
    each at four step sizes; returns how many components it flags."""
    D, P = neuron.state_size, neuron.input_size
    xs, us = jr.normal(getkey(), (n, D)), jr.normal(getkey(), (n, P))
    dts = jnp.repeat(jnp.array([0.3, 1.0, 3.0, 8.0]), n)
    xs, us = jnp.tile(xs, (4, 1)), jnp.tile(us, (4, 1))

    def one(x, u, dt):
        drive = neuron.drive(u)
        field = lambda p: neuron.driven_vector_field(p, drive)
        step = lambda p: disc.step(neuron, p, drive, dt)
        F, jac = jax.jacfwd(field)(x), jax.jacfwd(step)(x)
        checked = disc.step_and_check(neuron, x, drive, dt)
        return step(x), jnp.diagonal(jac), jnp.diagonal(F), checked

    expected, factor_ref, F, (x_new, factor, unstable) = jax.vmap(one)(xs, us, dts)
    assert float(jnp.max(jnp.abs(x_new - expected))) < 1e-12
    assert float(jnp.max(jnp.abs(factor - factor_ref))) < 1e-12
    amplifies = jnp.abs(factor_ref) > 1 + 1e-9
    assert jnp.array_equal(unstable, amplifies & (F < 0))
    return int(jnp.sum(unstable))


@pytest.mark.parametrize("step", ["euler", "semi-implicit"])
def test_step_and_check_flags_an_amplified_damped_component(step, getkey):
    """Where a step amplifies a component that the ODE damps, `step_and_check`
    flags it as the rule says: the semi-implicit step too (its factor carries
    dA_i/dx_i and db_i/dx_i), on an LTC with doubled parameters at large steps.
    The sweep must flag some components, or the test above could not fail."""
    neuron = _scaled(lt.LTC(6, 3, key=getkey()), 2.0)
    assert _check_step_and_check(neuron, STEPS[step], getkey, n=64) > 0
