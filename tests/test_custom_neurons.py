"""User-defined neurons: a subclass that writes only `vector_field` gets every
solver, `compare_views` and `LrcSSM`; mistakes are reported with a fix."""

from typing import ClassVar

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import optax
import pytest
from jaxtyping import Array, Float

import lrc_toolkit as lt
from lrc_toolkit.models import LrcSSM

from .helpers import max_abs_diff, python_loop


D, P, T = 3, 2, 12


class Leaky(lt.AbstractLiquidNeuron):
    """dx/dt = (-x + tanh(W u + w ⊙ x)) / τ: diagonal, written from scratch here."""

    state_size: int = eqx.field(static=True)
    input_size: int = eqx.field(static=True)
    jacobian_structure: ClassVar[str] = "diagonal"
    W: Float[Array, "D P"]
    w: Float[Array, " D"]
    log_tau: Float[Array, " D"]

    def __init__(self, state_size, input_size, *, dtype=jnp.float64, key):
        k1, k2 = jax.random.split(key)
        self.W = 0.5 * jax.random.normal(k1, (state_size, input_size), dtype)
        self.w = 0.5 * jax.random.normal(k2, (state_size,), dtype)
        self.log_tau = jnp.zeros((state_size,), dtype)
        self.state_size, self.input_size = state_size, input_size

    def vector_field(self, x, u):
        return (-x + jnp.tanh(self.W @ u + self.w * x)) / jnp.exp(self.log_tau)


class Coupled(lt.AbstractLiquidNeuron):
    """dx/dt = -x + tanh(M x + W u), fully coupled."""

    state_size: int = eqx.field(static=True)
    input_size: int = eqx.field(static=True)
    jacobian_structure: ClassVar[str] = "dense"
    M: Float[Array, "D D"]
    W: Float[Array, "D P"]

    def __init__(self, state_size, input_size, *, key):
        k1, k2 = jax.random.split(key)
        self.M = 0.3 * jax.random.normal(k1, (state_size, state_size), jnp.float64)
        self.W = jax.random.normal(k2, (state_size, input_size), jnp.float64)
        self.state_size, self.input_size = state_size, input_size

    def vector_field(self, x, u):
        return -x + jnp.tanh(self.M @ x + self.W @ u)


class MisDeclared(Coupled):
    """Couples neuron 0 into neuron 1 but claims to be diagonal."""

    jacobian_structure: ClassVar[str] = "diagonal"

    def vector_field(self, x, u):
        return -x + jnp.tanh(self.W @ u) + 0.5 * jnp.zeros_like(x).at[1].set(x[0])


def _data(getkey):
    x0 = jax.random.normal(getkey(), (D,), jnp.float64)
    return x0, jax.random.normal(getkey(), (T, P), jnp.float64)


@pytest.mark.slow
def test_custom_diagonal_neuron_in_every_view(getkey):
    neuron = Leaky(D, P, key=getkey())
    x0, inputs = _data(getkey)
    reference = python_loop(neuron, x0, inputs)
    solvers = {
        "sequential": lt.Sequential(),
        "parallel": lt.ParallelNewton(),
        "ode": lt.ODE(diffrax.Euler()),
    }
    for name, solver in solvers.items():
        states = lt.solve(neuron, x0, inputs, solver=solver).states
        assert max_abs_diff(states, reference) <= 1e-9, name
    lt.check_jacobian_structure(neuron)
    comparison = lt.compare_views(neuron, x0, inputs, repeats=1)
    assert comparison.parallel_vs_sequential["max"] <= 1e-9
    assert comparison.outcomes == {"sequential": "", "parallel": "", "ode": ""}
    # Gradients through the parallel solver's adjoint equal autodiff through scan.
    loss = lambda solver: (
        lambda n: jnp.sum(jnp.sin(lt.solve(n, x0, inputs, solver=solver).states))
    )
    g_seq = eqx.filter_grad(loss(lt.Sequential(autodiff=True)))(neuron)
    g_par = eqx.filter_grad(loss(lt.ParallelNewton()))(neuron)
    assert max_abs_diff(g_seq, g_par) <= 1e-9


@pytest.mark.parametrize("method", ["dense", "quasi"])
def test_custom_dense_neuron_in_parallel(method, getkey):
    neuron = Coupled(D, P, key=getkey())
    x0, inputs = _data(getkey)
    sol = lt.solve(neuron, x0, inputs, solver=lt.ParallelNewton(method=method))
    assert max_abs_diff(sol.states, python_loop(neuron, x0, inputs)) <= 1e-9
    with pytest.raises(ValueError, match="method='dense'"):
        lt.solve(neuron, x0, inputs, solver=lt.ParallelNewton(method="newton"))


class WrongShape(Leaky):
    def vector_field(self, x, u):
        return self.W.T @ x  # (P,), not (D,)


class WrongDtype(Leaky):
    def vector_field(self, x, u):
        return (-x).astype(jnp.float32)


@pytest.mark.parametrize(
    "cls, what", [(WrongShape, r"returned shape \(2,\)"), (WrongDtype, "dtype float32")]
)
def test_wrong_output_rejected_with_a_fix(cls, what, getkey):
    neuron = cls(D, P, key=getkey())
    x0, inputs = _data(getkey)
    fix = "must return an array of the same shape and dtype as `x`"
    for solver in (lt.Sequential(), lt.ParallelNewton(), lt.ODE(diffrax.Euler())):
        with pytest.raises(ValueError, match=what) as info:
            lt.solve(neuron, x0, inputs, solver=solver)
        assert fix in str(info.value)
    with pytest.raises(ValueError, match=what) as info:
        lt.check_jacobian_structure(neuron)
    assert "must return dx/dt with the shape and dtype of x" in str(info.value)


def test_misdeclared_diagonal_neuron(getkey):
    neuron = MisDeclared(D, P, key=getkey())
    with pytest.raises(ValueError, match="dx_1/dt depends on x_0"):
        lt.check_jacobian_structure(neuron)
    # Named on the forward pass by the discrete solvers (issue 19: a coupled
    # "diagonal" neuron was reported as an unstable step, or converged silently),
    # not only by the gradient. The ODE view does not use the declared structure.
    x0, inputs = _data(getkey)
    for solver in (lt.ParallelNewton(), lt.Sequential()):
        with pytest.raises(lt.SolveError, match="check_jacobian_structure") as info:
            lt.solve(neuron, x0, inputs, solver=solver).states.block_until_ready()
        assert info.value.outcome == "jacobian_structure_mismatch"
        # As data with throw=False, inside jit too, and the honest neuron passes.
        run = jax.jit(lambda n, u: lt.solve(n, x0, u, solver=solver, throw=False))
        assert run(neuron, inputs).outcome == "jacobian_structure_mismatch"
        assert run(Leaky(D, P, key=getkey()), inputs).outcome == "successful"
    ode = lt.solve(neuron, x0, inputs, solver=lt.ODE(diffrax.Euler()))
    assert max_abs_diff(ode.states, python_loop(neuron, x0, inputs)) <= 1e-9
    honest = lt.solve(neuron, x0, inputs, solver=lt.Sequential(check_stability=False))
    assert max_abs_diff(honest.states, python_loop(neuron, x0, inputs)) <= 1e-9


def test_missing_vector_field_is_abstract():
    class NoField(lt.AbstractLiquidNeuron):
        state_size: int = 2
        input_size: int = 1
        jacobian_structure: ClassVar[str] = "diagonal"

    with pytest.raises(TypeError, match="abstract"):
        NoField()


@pytest.mark.slow
def test_custom_neuron_trains_inside_lrcssm(getkey):
    """A neuron defined here, given to LrcSSM as a factory, trains with the
    parallel solver: finite losses that decrease, parameters that move. (Δt = 0.5:
    with τ = 1 and a negative self-weight w the explicit step at Δt = 1 sits at its
    stability edge, |1 - Δt (1 - w) / τ| ≈ 1, and a few Adam steps on τ cross it,
    which the model rightly reports as an unstable step.)"""
    factory = lambda D, H, *, key: Leaky(D, H, dtype=jnp.float32, key=key)
    model = LrcSSM(
        P,
        2,
        hidden_size=8,
        state_size=4,
        num_blocks=1,
        neuron=factory,
        solver=lt.ParallelNewton(),
        dt=0.5,
        dtype=jnp.float32,
        key=getkey(),
    )
    x = jax.random.normal(getkey(), (4, T, P), jnp.float32)
    y = jnp.array([0, 1, 0, 1])
    optimiser = optax.adam(1e-2)
    opt_state = optimiser.init(eqx.filter(model, eqx.is_inexact_array))

    @eqx.filter_jit
    def step(model, opt_state):
        def loss_fn(model):
            logits = jax.vmap(model)(x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        loss, grads = eqx.filter_value_and_grad(loss_fn)(model)
        updates, opt_state = optimiser.update(grads, opt_state, model)
        return eqx.apply_updates(model, updates), opt_state, loss

    losses, trained = [], model
    # optax's bias correction mixes int and float scalars, which the suite's strict
    # promotion forbids; the model itself runs under strict promotion elsewhere.
    with jax.numpy_dtype_promotion("standard"):
        for _ in range(5):
            trained, opt_state, loss = step(trained, opt_state)
            losses.append(float(loss))
    assert all(jnp.isfinite(jnp.array(losses)))
    assert losses[-1] < losses[0]
    # the user's neuron, inside the model's learned time scales
    before, after = model.blocks[0].neuron.neuron, trained.blocks[0].neuron.neuron
    assert max_abs_diff(before.W, after.W) > 0
    assert max_abs_diff(before.log_tau, after.log_tau) > 0
