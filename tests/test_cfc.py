"""CfC neurons (closed-form continuous-time cells) and the `ClosedForm` step, against
a numpy transcription of the published equations (as in `ncps.torch.CfCCell`)."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import lrc_toolkit as lt
from lrc_toolkit._discretise import ClosedForm
from lrc_toolkit._neurons.cfc import AbstractCfC, CfC, DiagonalCfC
from lrc_toolkit.models import LrcSSM

from .helpers import slow_unless


D, P, T = 5, 3, 40


# --- An independent reference: the ncps forward pass, transcribed in numpy --------


def _np_activation(name, z):
    return {
        "lecun_tanh": lambda z: 1.7159 * np.tanh(0.666 * z),
        "tanh": np.tanh,
        "relu": lambda z: np.maximum(z, 0.0),
        "silu": lambda z: z / (1.0 + np.exp(-z)),
        "gelu": lambda z: 0.5 * z * (1.0 + np.vectorize(math.erf)(z / math.sqrt(2))),
    }[name](z)


def _np_sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _np_heads(neuron):
    """`(ff1, ff2, time_a, time_b)` as (weight, bias) pairs, nn.Linear layout."""
    W = np.asarray(neuron.head_weight)
    if isinstance(neuron, DiagonalCfC):  # held as sqrt(F) W
        W = W / math.sqrt(W.shape[-1])
    b = np.asarray(neuron.head_bias)
    return [(W[k], b[k]) for k in range(4)]


def _np_interpolate(mode, ff1, ff2, t_a, t_b, ts):
    t_interp = _np_sigmoid(t_a * ts + t_b)
    if mode == "no_gate":
        return ff1 + t_interp * ff2
    return ff1 * (1.0 - t_interp) + t_interp * ff2


def numpy_cfc(neuron, x0, inputs, timespans):
    """`CfCCell.forward` of ncps, one step at a time: `x = cat([input, hx])`, the
    backbone, the four heads, the gated interpolation."""
    heads = _np_heads(neuron)
    hx = np.asarray(x0, np.float64)
    out = []
    for u, ts in zip(np.asarray(inputs), timespans):
        z = np.concatenate([u, hx])
        for W, c in neuron.backbone:
            z = _np_activation(neuron.backbone_activation, np.asarray(W) @ z + c)
        (W1, b1), (W2, b2), (Wa, ba), (Wb, bb) = heads
        ff1 = np.tanh(W1 @ z + b1)
        ff2 = np.tanh(W2 @ z + b2)
        hx = _np_interpolate(neuron.mode, ff1, ff2, Wa @ z + ba, Wb @ z + bb, ts)
        out.append(hx)
    return np.stack(out)


def numpy_diagonal_cfc(neuron, x0, inputs, timespans):
    """The diagonal cell: an input-only backbone, then each head
    $W h + w \\odot x + b$, with $w_{1,2} = \\tanh(\\theta_{1,2})$ and
    $W$ = `head_weight` / sqrt(F), written out here."""
    heads = _np_heads(neuron)
    theta = np.asarray(neuron.head_state)
    w = np.concatenate([np.tanh(theta[:2]), theta[2:]])
    hx = np.asarray(x0, np.float64)
    out = []
    for u, ts in zip(np.asarray(inputs), timespans):
        h = np.asarray(u)
        for W, c in neuron.backbone:
            h = _np_activation(neuron.backbone_activation, np.asarray(W) @ h + c)
        (W1, b1), (W2, b2), (Wa, ba), (Wb, bb) = heads
        ff1 = np.tanh(W1 @ h + w[0] * hx + b1)
        ff2 = np.tanh(W2 @ h + w[1] * hx + b2)
        t_a = Wa @ h + w[2] * hx + ba
        t_b = Wb @ h + w[3] * hx + bb
        hx = _np_interpolate(neuron.mode, ff1, ff2, t_a, t_b, ts)
        out.append(hx)
    return np.stack(out)


REFERENCES = {CfC: numpy_cfc, DiagonalCfC: numpy_diagonal_cfc}


def _problem(getkey, T=T):
    x0 = 0.5 * jax.random.normal(getkey(), (D,), jnp.float64)
    inputs = jax.random.normal(getkey(), (T, P), jnp.float64)
    return x0, inputs


def _timespans(kind, T, key):
    if kind == "scalar_1":
        return 1.0, np.ones(T)
    if kind == "scalar_0.3":
        return 0.3, np.full(T, 0.3)
    dts = np.asarray(jax.random.uniform(key, (T,), jnp.float64, 0.05, 3.0))
    return jnp.asarray(dts), dts


# --- Against the numpy transcription -----------------------------------------------

OPTIONS = [
    dict(),
    dict(mode="no_gate"),
    dict(backbone_layers=0),
    dict(backbone_layers=2, backbone_units=7, backbone_activation="silu"),
    dict(backbone_units=6, backbone_activation="gelu"),
    dict(backbone_units=6, backbone_activation="relu", mode="no_gate"),
    dict(backbone_units=6, backbone_activation="tanh"),
]


@pytest.mark.parametrize("dts", ["scalar_0.3", "per_step"])
# the fast tier: the default backbone, the gate-free mode, no backbone
@pytest.mark.parametrize(
    "options",
    slow_unless(OPTIONS, fast=OPTIONS[:3]),
    ids=lambda o: str(sorted(o.items())),
)
@pytest.mark.parametrize("cls", [CfC, DiagonalCfC])
def test_sequential_matches_numpy(cls, options, dts, getkey):
    neuron = cls(D, P, dtype=jnp.float64, key=getkey(), **options)
    x0, inputs = _problem(getkey)
    dt, timespans = _timespans(dts, T, getkey())
    reference = REFERENCES[cls](neuron, x0, inputs, timespans)
    sol = lt.solve_sequential(neuron, x0, inputs, dt=dt, discretisation=ClosedForm())
    np.testing.assert_allclose(sol.states, reference, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "dts", ["scalar_1", pytest.param("per_step", marks=pytest.mark.slow)]
)
@pytest.mark.parametrize("options", OPTIONS[:4], ids=lambda o: str(sorted(o.items())))
def test_diagonal_parallel_matches_sequential(options, dts, getkey):
    """Exact Newton on the diagonal cell: the parallel solve equals the `lax.scan`
    of the closed-form step and the numpy loop."""
    neuron = DiagonalCfC(D, P, dtype=jnp.float64, key=getkey(), **options)
    x0, inputs = _problem(getkey, T=150)
    dt, timespans = _timespans(dts, 150, getkey())
    seq = lt.solve_sequential(neuron, x0, inputs, dt=dt, discretisation=ClosedForm())
    par = lt.solve_parallel(neuron, x0, inputs, dt=dt, discretisation=ClosedForm())
    assert bool(par.converged)
    assert int(par.iterations) < 20
    np.testing.assert_allclose(par.states, seq.states, rtol=0, atol=1e-9)
    reference = numpy_diagonal_cfc(neuron, x0, inputs, timespans)
    np.testing.assert_allclose(par.states, reference, rtol=0, atol=1e-9)


def test_dense_parallel_matches_numpy(getkey):
    """The dense cell in parallel needs full-Jacobian Newton (`method="dense"`)."""
    neuron = CfC(D, P, backbone_units=8, dtype=jnp.float64, key=getkey())
    x0, inputs = _problem(getkey, T=30)
    par = lt.solve(
        neuron,
        x0,
        inputs,
        solver=lt.ParallelNewton(method="dense"),
        dt=0.5,
        discretisation=ClosedForm(),
    )
    reference = numpy_cfc(neuron, x0, inputs, np.full(30, 0.5))
    np.testing.assert_allclose(par.states, reference, rtol=0, atol=1e-9)


# --- Gradients ---------------------------------------------------------------------


def _scalar(sol):
    s = sol.states
    return jnp.sum(jnp.sin(s) * jnp.arange(s.size, dtype=s.dtype).reshape(s.shape))


def _gradient(solve, neuron, x0, inputs, dt, **kwargs):
    def loss(args):
        neuron, x0, inputs, dt = args
        return _scalar(
            solve(neuron, x0, inputs, dt=dt, discretisation=ClosedForm(), **kwargs)
        )

    return eqx.filter_grad(loss)((neuron, x0, inputs, dt))


@pytest.mark.slow
@pytest.mark.parametrize("cls", [CfC, DiagonalCfC])
def test_gradients_match_autodiff_through_scan(cls, getkey):
    """The parallel solver's fixed-point adjoint against plain reverse-mode autodiff
    of a `lax.scan` of the closed-form step (written here, not the toolkit's)."""
    neuron = cls(D, P, backbone_units=6, dtype=jnp.float64, key=getkey())
    x0, inputs = _problem(getkey, T=60)
    dt = jax.random.uniform(getkey(), (60,), jnp.float64, 0.1, 2.0)

    def scan_solve(neuron, x0, inputs, *, dt, discretisation):
        def body(x, u_dt):
            u, h = u_dt
            x = neuron.closed_form_step(x, neuron.drive(u), h)
            return x, x

        _, states = jax.lax.scan(body, x0, (inputs, dt))
        return lt.Solution(states=states, result=lt.RESULTS.successful)

    method = None if cls is DiagonalCfC else "dense"
    expected = _gradient(scan_solve, neuron, x0, inputs, dt)
    solver = lt.ParallelNewton(method=method)
    got = _gradient(lt.solve, neuron, x0, inputs, dt, solver=solver)
    assert eqx.tree_equal(got, expected, rtol=1e-8, atol=1e-8)
    # And the sequential solver, differentiated through its own scan.
    seq = _gradient(lt.solve_sequential, neuron, x0, inputs, dt)
    assert eqx.tree_equal(seq, expected, rtol=1e-10, atol=1e-10)


def test_gradients_finite_differences(getkey):
    """`check_grads` (finite differences) on the closed-form step itself."""
    neuron = DiagonalCfC(D, P, backbone_units=4, dtype=jnp.float64, key=getkey())
    x, u = _problem(getkey, T=1)
    dense = CfC(D, P, backbone_units=4, dtype=jnp.float64, key=getkey())
    for n in (neuron, dense):
        f = lambda x, u, dt, n=n: n.closed_form_step(x, n.drive(u), dt)
        check_grads(f, (x, u[0], jnp.asarray(0.7)), order=1, modes=("fwd", "rev"))


# --- Structure ---------------------------------------------------------------------


def _step_jacobian(neuron, x, u, dt=0.8):
    return jax.jacfwd(lambda x: neuron.closed_form_step(x, neuron.drive(u), dt))(x)


@pytest.mark.parametrize("options", OPTIONS[:4], ids=lambda o: str(sorted(o.items())))
def test_jacobian_structure(options, getkey):
    diagonal = DiagonalCfC(D, P, dtype=jnp.float64, key=getkey(), **options)
    dense = CfC(D, P, dtype=jnp.float64, key=getkey(), **options)
    assert diagonal.jacobian_structure == "diagonal"
    assert dense.jacobian_structure == "dense"
    lt.check_jacobian_structure(diagonal)
    lt.check_jacobian_structure(dense)
    x, inputs = _problem(getkey, T=1)
    off = ~np.eye(D, dtype=bool)
    # The step map itself (not only the vector field) is diagonal / dense.
    assert np.all(np.asarray(_step_jacobian(diagonal, x, inputs[0]))[off] == 0)
    assert np.min(np.abs(np.asarray(_step_jacobian(dense, x, inputs[0]))[off])) > 0


class _MislabelledCfC(AbstractCfC):
    """A dense CfC that claims to be diagonal: the structure check must catch it."""

    inner: CfC
    state_size: int = eqx.field(static=True)
    input_size: int = eqx.field(static=True)
    mode: str = eqx.field(static=True)
    jacobian_structure = "diagonal"

    def drive(self, u):
        return self.inner.drive(u)

    def preactivations(self, x, drive):
        return self.inner.preactivations(x, drive)


def test_jacobian_structure_check_catches_mislabel(getkey):
    inner = CfC(D, P, backbone_units=6, dtype=jnp.float64, key=getkey())
    liar = _MislabelledCfC(inner, D, P, "default")
    with pytest.raises(ValueError, match="depends on"):
        lt.check_jacobian_structure(liar)


# --- The vector field: the time derivative of the closed form at t = 0 -------------


@pytest.mark.parametrize("mode", ["default", "no_gate"])
@pytest.mark.parametrize("cls", [CfC, DiagonalCfC])
def test_vector_field_is_derivative_at_zero(cls, mode, getkey):
    r"""$f(x, u) = \partial_t x(t)|_{t=0}$: against a hand-written formula, against
    central finite differences in $t$, and first-order consistency of the increments:
    $\Phi(\Delta t) - \Phi(0)$ equals the Euler increment $\Delta t f$ up to
    $O(\Delta t^2)$ (the error falls 100-fold for a 10-fold smaller step)."""
    neuron = cls(D, P, backbone_units=6, mode=mode, dtype=jnp.float64, key=getkey())
    x, inputs = _problem(getkey, T=1)
    u = inputs[0]
    f = np.asarray(neuron.vector_field(x, u))
    # Hand-written derivative of ff1 (1 - s(a t + b)) + s(a t + b) ff2 at t = 0.
    pre = np.asarray(neuron.preactivations(x, neuron.drive(u)))
    ff1, ff2, a, b = np.tanh(pre[0]), np.tanh(pre[1]), pre[2], pre[3]
    s = _np_sigmoid(b)
    expected = a * s * (1 - s) * ((ff2 - ff1) if mode == "default" else ff2)
    np.testing.assert_allclose(f, expected, rtol=1e-12, atol=1e-14)

    phi = lambda dt: np.asarray(
        ClosedForm().step(neuron, x, neuron.drive(u), jnp.asarray(dt))
    )
    h = 1e-5
    np.testing.assert_allclose((phi(h) - phi(-h)) / (2 * h), f, rtol=1e-7, atol=1e-9)
    errors = []
    for dt in (1e-2, 1e-3):
        euler = np.asarray(lt.Euler().step(neuron, x, neuron.drive(u), jnp.asarray(dt)))
        errors.append(np.max(np.abs((phi(dt) - phi(0.0)) - (euler - np.asarray(x)))))
    assert errors[1] < errors[0] / 50
    # ...while the closed form does not start at the state (a learned jump at t = 0).
    assert np.max(np.abs(phi(0.0) - np.asarray(x))) > 1e-3


def test_euler_tiny_dt_tracks_the_ode_not_the_jump(getkey):
    """Euler with a tiny step integrates $f$; the closed form at the same tiny step
    is $\\Phi(0) + \\Delta t f$. Their difference is the jump $\\Phi(0) - x$, which
    the docs state; the agreement holds for the increments."""
    neuron = DiagonalCfC(D, P, backbone_units=6, dtype=jnp.float64, key=getkey())
    x, inputs = _problem(getkey, T=1)
    d = neuron.drive(inputs[0])
    dt = jnp.asarray(1e-6)
    closed = ClosedForm().step(neuron, x, d, dt)
    euler = lt.Euler().step(neuron, x, d, dt)
    jump = ClosedForm().step(neuron, x, d, jnp.asarray(0.0)) - x
    np.testing.assert_allclose(closed - euler, jump, rtol=0, atol=1e-11)


def test_expanding_closed_form_is_not_an_unstable_step(getkey):
    """A step factor above 1 is the CfC's own dynamics, not a step-size artefact:
    the solvers must not report `unstable_step` for `ClosedForm` (they do for an
    explicit Euler step that amplifies a damped component)."""
    neuron = DiagonalCfC(D, P, backbone_units=6, dtype=jnp.float64, key=getkey())
    neuron = eqx.tree_at(lambda n: n.head_state, neuron, 8.0 * neuron.head_state)
    x0, inputs = _problem(getkey, T=40)
    for solver in (lt.Sequential(), lt.ParallelNewton()):
        sol = lt.solve(neuron, x0, inputs, solver=solver, discretisation=ClosedForm())
        assert bool(sol.converged)
        assert float(sol.stats["max_factor"]) > 1.1  # expanding (1.22 as written)
        reference = numpy_diagonal_cfc(neuron, x0, inputs, np.ones(40))
        np.testing.assert_allclose(sol.states, reference, rtol=0, atol=1e-9)


# --- Errors ------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [CfC, DiagonalCfC])
def test_bad_arguments(cls, getkey):
    key = getkey()
    with pytest.raises(ValueError, match="`state_size` must be a positive integer"):
        cls(0, P, key=key)
    with pytest.raises(ValueError, match="`input_size` must be a positive integer"):
        cls(D, -2, key=key)
    with pytest.raises(ValueError, match="`backbone_units` must be a positive"):
        cls(D, P, backbone_units=0, key=key)
    with pytest.raises(ValueError, match="`backbone_layers` must be a non-negative"):
        cls(D, P, backbone_layers=-1, key=key)
    with pytest.raises(ValueError, match=r"`mode` must be one of \('default'"):
        cls(D, P, mode="pure", key=key)
    with pytest.raises(ValueError, match="`backbone_activation` must be one of"):
        cls(D, P, backbone_activation="sigmoid", key=key)
    with pytest.raises(ValueError, match="`dtype` must be a floating dtype"):
        cls(D, P, dtype=jnp.int32, key=key)


def test_closed_form_needs_a_closed_form_neuron(getkey):
    neuron = lt.LRC(D, P, dtype=jnp.float64, key=getkey())
    x0, inputs = _problem(getkey, T=4)
    with pytest.raises(TypeError, match="ClosedForm\\(\\) needs a neuron with a"):
        lt.solve_sequential(neuron, x0, inputs, discretisation=ClosedForm())
    with pytest.raises(TypeError, match="LRC has none. Use a discretisation"):
        lt.solve_parallel(neuron, x0, inputs, discretisation=ClosedForm())


def test_dense_cfc_refuses_diagonal_newton(getkey):
    neuron = CfC(D, P, backbone_units=4, dtype=jnp.float64, key=getkey())
    x0, inputs = _problem(getkey, T=4)
    with pytest.raises(ValueError, match="method='newton' needs a neuron with a diag"):
        lt.solve(
            neuron,
            x0,
            inputs,
            solver=lt.ParallelNewton(method="newton"),
            discretisation=ClosedForm(),
        )


def test_float32(getkey):
    neuron = DiagonalCfC(D, P, backbone_units=6, dtype=jnp.float32, key=getkey())
    x0, inputs = (a.astype(jnp.float32) for a in _problem(getkey, T=50))
    seq = lt.solve_sequential(neuron, x0, inputs, discretisation=ClosedForm())
    par = lt.solve_parallel(neuron, x0, inputs, discretisation=ClosedForm())
    assert seq.states.dtype == par.states.dtype == jnp.float32
    reference = numpy_diagonal_cfc(neuron, x0, inputs, np.ones(50))
    np.testing.assert_allclose(par.states, reference, rtol=0, atol=1e-5)


# --- In a model ----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("cls", [DiagonalCfC, CfC])
def test_lrcssm_learns_with_cfc(cls, getkey):
    """An LrcSSM with CfC layers (`discretisation=ClosedForm()`, the model's default
    parallel solver) learns a task that needs memory: the sign of the sum of the
    first channel over the sequence. Adam on a fixed batch, written out here."""
    import functools

    import optax

    from lrc_toolkit.models import LrcSSM

    n, T_ = 48, 12
    x = jax.random.normal(getkey(), (n, T_, 2), jnp.float64)
    y = (jnp.sum(x[:, :, 0], axis=1) > 0).astype(jnp.int32)
    model = LrcSSM(
        input_size=2,
        num_outputs=2,
        hidden_size=8,
        state_size=4,
        num_blocks=1,
        neuron=functools.partial(cls, backbone_units=8, dtype=jnp.float64),
        discretisation=ClosedForm(),
        dtype=jnp.float64,
        key=getkey(),
    )

    def loss(model):
        logits = jax.vmap(model)(x)
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))

    optimiser = optax.adam(3e-2)
    state = optimiser.init(eqx.filter(model, eqx.is_inexact_array))

    @eqx.filter_jit
    def train_step(model, state):
        value, grads = eqx.filter_value_and_grad(loss)(model)
        with jax.numpy_dtype_promotion("standard"):  # optax mixes its int32 count
            updates, state = optimiser.update(grads, state)
        return eqx.apply_updates(model, updates), state, value

    first = float(loss(model))
    for _ in range(40):
        model, state, value = train_step(model, state)
    predicted = np.argmax(np.asarray(jax.vmap(model)(x)), axis=-1)
    accuracy = float(np.mean(predicted == np.asarray(y)))
    assert float(value) < 0.5 * first
    assert accuracy >= 0.9


@pytest.mark.slow
def test_lrcssm_trains_on_basicmotions_with_named_cfc(tmp_path):
    """`models.NEURONS` names both cells; the model picks `ClosedForm()` for them,
    records it, and `fit` trains a small one on BasicMotions (bundled with aeon)."""
    import jax.random as jr

    from lrc_toolkit.data import load_uea
    from lrc_toolkit.models import LrcSSM, NEURONS
    from lrc_toolkit.training import fit, TrainConfig

    assert NEURONS["cfc"] is CfC and NEURONS["cfc-diagonal"] is DiagonalCfC
    ds = load_uea("BasicMotions", seed=2345)
    model = LrcSSM(
        ds.input_size,
        ds.num_classes,
        hidden_size=16,
        state_size=8,
        num_blocks=1,
        neuron="cfc-diagonal",
        dtype=jnp.float32,
        key=jr.key(0),
    )
    assert isinstance(model.discretisation, ClosedForm)
    assert model.config["discretisation"] == {"type": "ClosedForm"}
    with pytest.raises(ValueError, match="ClosedForm"):
        LrcSSM(4, 2, neuron="cfc", discretisation=lt.Euler(), key=jax.random.key(0))
    result = fit(
        model,
        ds.train,
        ds.val,
        ds.test,
        config=TrainConfig(epochs=12, batch_size=8, learning_rate=1e-2, patience=12),
        progress=False,
    )
    # Chance is 25 %; a few epochs suffice for a working liquid layer.
    assert result.test_metrics["accuracy"] >= 0.75


@pytest.mark.slow
def test_each_neuron_declares_its_default_step():
    """The model and `lrc-toolkit compare` take the step from the neuron's
    `default_discretisation()` (CfC: its closed form; LTC: the semi-implicit step; ComplexLRC: implicit Euler;
    the others explicit Euler), through a `TimeScaled` wrapper too, and refuse a
    closed form for a neuron that has none."""
    from lrc_toolkit.cli.compare import _default_discretisation
    from lrc_toolkit.models import NEURONS

    expected = {
        "cfc": ClosedForm,
        "cfc-diagonal": ClosedForm,
        "ltc": lt.SemiImplicitEuler,
        "complex-lrc": lt.ImplicitEuler,
        "complex-lrc-gk": lt.ImplicitEuler,
        "complex-lrc-gka": lt.ImplicitEuler,
    }
    for name, factory in NEURONS.items():
        neuron = factory(4, 2, key=jax.random.key(0))
        kind = expected.get(name, lt.Euler)
        assert type(neuron.default_discretisation()) is kind, name
        assert (
            type(lt.TimeScaled(neuron, key=jax.random.key(1)).default_discretisation())
            is kind
        )
        assert (
            _default_discretisation(neuron)
            == {
                ClosedForm: "closed-form",
                lt.SemiImplicitEuler: "semi-implicit",
                lt.ImplicitEuler: "implicit",
                lt.Euler: "euler",
            }[kind]
        )
    assert isinstance(
        LrcSSM(4, 2, neuron="ltc", key=jax.random.key(0)).discretisation,
        lt.SemiImplicitEuler,
    )
    with pytest.raises(ValueError, match="LRC is not a closed-form cell"):
        LrcSSM(4, 2, neuron="lrc", discretisation=ClosedForm(), key=jax.random.key(0))
    with pytest.raises(ValueError, match="CfC is a closed-form cell"):
        LrcSSM(4, 2, neuron="cfc", discretisation=lt.Euler(), key=jax.random.key(0))


def test_diagonal_cfc_candidate_state_weights_stay_below_one(getkey):
    """w_1, w_2 = tanh(theta) for any theta (each candidate head a contraction in its
    own state); the time heads' w_a, w_b are unbounded; W = head_weight / sqrt(F)
    starts Glorot-uniform, inside sqrt(6 / (F + D))."""
    neuron = DiagonalCfC(D, P, backbone_units=6, dtype=jnp.float64, key=getkey())
    big = eqx.tree_at(lambda n: n.head_state, neuron, 3.0 * neuron.head_state)
    w = np.asarray(big.state_weights())
    assert np.all(np.abs(w[:2]) < 1) and np.max(np.abs(w[:2])) > 0.99
    np.testing.assert_array_equal(w[2:], 3.0 * np.asarray(neuron.head_state[2:]))
    W = np.asarray(neuron.head_weights())
    assert np.max(np.abs(W)) <= math.sqrt(6 / (6 + D))
    assert np.max(np.abs(W)) > 0.5 * math.sqrt(6 / (6 + D))
