"""Two-variable neurons in the parallel view (issues 19 and 20): exact gradients
with `ParallelNewton(fallback=...)`, the default Newton iteration on locally
expanding dynamics (FitzHugh–Nagumo at Δt = 0.1), and block-diagonal neurons
(`jacobian_structure = "block"`) against the sequential solve and autodiff through
a plain `lax.scan`."""

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import pytest
from jaxtyping import Array

import lrc_toolkit as lt

from .helpers import max_abs_diff


class DenseFHN(lt.AbstractLiquidNeuron):
    """FitzHugh–Nagumo neurons, state (v_0, w_0, v_1, w_1, ...), declared dense (as
    a user would before block neurons existed): each neuron's current is
    `i_ext + w_in @ u`."""

    state_size: int
    input_size: int
    w_in: Array
    i_ext: Array
    jacobian_structure: ClassVar[str] = "dense"

    def vector_field(self, x, u):
        v, w = x[0::2], x[1::2]
        current = self.i_ext + self.w_in @ u
        dv = v - v**3 / 3 - w + current
        dw = 0.08 * (v + 0.7 - 0.8 * w)
        return jnp.stack([dv, dw], axis=-1).reshape(-1)


def dense_fhn(key, N=4, P=2):
    k1, k2 = jr.split(key)
    return DenseFHN(
        2 * N, P, 0.5 * jr.normal(k1, (N, P)), 0.5 + 0.1 * jr.normal(k2, (N,))
    )


def scan_states(neuron, x0, inputs, dt):
    """Explicit Euler as a plain `lax.scan` over `vector_field`: the reference whose
    autodiff gradients the solvers' fixed-point gradients must equal."""

    def step(x, u_h):
        u, h = u_h
        x = x + h * neuron.vector_field(x, u)
        return x, x

    dts = jnp.broadcast_to(jnp.asarray(dt, x0.dtype), inputs.shape[:1])
    return jax.lax.scan(step, x0, (inputs, dts))[1]


def _loss(states, inputs):
    # A loss that weighs every state differently (a sum of squares would hide a
    # permuted or transposed cotangent less well).
    weights = jnp.cos(jnp.arange(states.size, dtype=states.dtype)).reshape(states.shape)
    return jnp.sum(weights * jnp.tanh(states)) + 0.1 * jnp.sum(inputs**2)


# -------------------------------------------------------- fallback gradients


@pytest.mark.slow
def test_fallback_gradients_are_exact(getkey):
    """Exact Newton without its safeguard diverges to NaN states and the sequential
    fallback supplies the states: the gradients are those of the fallback's
    states, not NaN."""
    neuron, x0 = dense_fhn(getkey()), jnp.full(8, 0.1)
    inputs = jr.normal(getkey(), (200, 2))
    solver = lt.ParallelNewton(damping=jnp.inf, fallback=lt.Sequential())

    def loss(n, x0, u):
        sol = lt.solve(n, x0, u, solver=solver, dt=0.1, throw=False)
        return _loss(sol.states, u), sol

    def reference(n, x0, u):
        return _loss(scan_states(n, x0, u, 0.1), u)

    (_, sol), grads = eqx.filter_value_and_grad(loss, has_aux=True)(neuron, x0, inputs)
    assert bool(sol.stats["fallback"]) and sol.converged
    plain = lt.ParallelNewton(damping=jnp.inf)
    newton = lt.solve(neuron, x0, inputs, solver=plain, dt=0.1, throw=False)
    assert not bool(jnp.all(jnp.isfinite(newton.states)))
    want = eqx.filter_grad(reference)(neuron, x0, inputs)
    assert max_abs_diff(grads, want) < 1e-10
    # x0 and the inputs as well.
    got_x0, got_u = jax.grad(lambda a, b: loss(neuron, a, b)[0], argnums=(0, 1))(
        x0, inputs
    )
    want_x0, want_u = jax.grad(lambda a, b: reference(neuron, a, b), argnums=(0, 1))(
        x0, inputs
    )
    assert max_abs_diff(got_x0, want_x0) < 1e-10
    assert max_abs_diff(got_u, want_u) < 1e-10


@pytest.mark.slow
def test_fallback_gradients_under_vmap(getkey):
    """Under `vmap` some sequences converge (tiny steps: Newton needs few
    iterations) and some fall back; every gradient equals autodiff through the
    sequential scan of its own sequence."""
    neuron, x0 = dense_fhn(getkey()), jnp.full(8, 0.1)
    inputs = jr.normal(getkey(), (4, 60, 2))
    dts = jnp.array([1e-4, 0.1, 1e-4, 0.2])
    solver = lt.ParallelNewton(max_iters=4, fallback=lt.Sequential())

    def loss(n, u, h):
        sol = lt.solve(n, x0, u, solver=solver, dt=h, throw=False)
        return _loss(sol.states, u), sol

    def batch_loss(n, u, h):
        losses, sols = jax.vmap(loss, in_axes=(None, 0, 0))(n, u, h)
        return jnp.sum(losses), sols

    (_, sols), grads = eqx.filter_value_and_grad(batch_loss, has_aux=True)(
        neuron, inputs, dts
    )
    assert [bool(f) for f in sols.stats["fallback"]] == [False, True, False, True]
    assert bool(jnp.all(sols.converged))

    def reference(n, u, h):
        return sum(_loss(scan_states(n, x0, u[i], h[i]), u[i]) for i in range(4))

    want = eqx.filter_grad(reference)(neuron, inputs, dts)
    assert max_abs_diff(grads, want) < 1e-10
    got_u = jax.grad(lambda u: batch_loss(neuron, u, dts)[0])(inputs)
    want_u = jax.grad(lambda u: reference(neuron, u, dts))(inputs)
    assert max_abs_diff(got_u, want_u) < 1e-10


def test_failed_solve_without_fallback_has_nan_gradients(getkey):
    """Without a fallback a diverged solve's gradients stay NaN (the failure is
    visible, not silently zero)."""
    neuron, x0 = dense_fhn(getkey()), jnp.full(8, 0.1)
    inputs = jr.normal(getkey(), (200, 2))
    solver = lt.ParallelNewton(damping=jnp.inf)  # exact Newton, no safeguard

    def loss(n):
        sol = lt.solve(n, x0, inputs, solver=solver, dt=0.1, throw=False)
        return _loss(sol.states, inputs), sol

    (_, sol), grads = eqx.filter_value_and_grad(loss, has_aux=True)(neuron)
    assert not sol.converged
    assert bool(jnp.any(jnp.isnan(grads.w_in)))


# ------------------------------------------------ the default damping (issue 19)


def test_default_newton_converges_on_fitzhugh_nagumo(getkey):
    """Dense FitzHugh–Nagumo at Δt = 0.1: exact Newton overflows (to 1e22 after
    one iteration); the default `ParallelNewton()` restarts damped, polishes with
    exact Newton and equals the sequential solve."""
    neuron, x0 = dense_fhn(getkey()), jnp.full(8, 0.1)
    inputs = jr.normal(getkey(), (200, 2))
    seq = lt.solve(neuron, x0, inputs, solver=lt.Sequential(), dt=0.1).states
    exact = lt.solve(
        neuron,
        x0,
        inputs,
        solver=lt.ParallelNewton(damping=jnp.inf),
        dt=0.1,
        throw=False,
    )
    assert exact.result == lt.RESULTS.nonfinite_states
    sol = lt.solve(neuron, x0, inputs, solver=lt.ParallelNewton(), dt=0.1)
    assert sol.converged and float(sol.stats["damping"]) == 1.0
    assert max_abs_diff(sol.states, seq) <= 1e-10


def test_default_newton_is_exact_newton_where_it_stays_finite(getkey):
    """A contracting neuron: the automatic damping never fires, the iterations and
    states are those of exact Newton (up to rounding)."""
    neuron = lt.LRC(6, 3, key=getkey())
    inputs = jr.normal(getkey(), (300, 3))
    x0 = jnp.zeros(6)
    auto = lt.solve(neuron, x0, inputs, solver=lt.ParallelNewton())
    exact = lt.solve(neuron, x0, inputs, solver=lt.ParallelNewton(damping=jnp.inf))
    assert float(auto.stats["damping"]) == jnp.inf
    assert int(auto.iterations) == int(exact.iterations)
    assert max_abs_diff(auto.states, exact.states) <= 1e-15  # (compiled apart)


# ------------------------------------------------------------- block neurons


class BlockFHN(lt.AbstractLiquidNeuron):
    """`DenseFHN` declared as what it is: blocks of 2 (v_i, w_i). `leak` couples
    each v_i to the next neuron's v when non-zero (a mis-declared block)."""

    state_size: int
    input_size: int
    w_in: Array
    i_ext: Array
    leak: float = 0.0
    jacobian_structure: ClassVar[str] = "block"
    block_size: ClassVar[int] = 2

    def vector_field(self, x, u):
        v, w = x[0::2], x[1::2]
        current = self.i_ext + self.w_in @ u
        dv = v - v**3 / 3 - w + current + self.leak * jnp.roll(v, 1)
        dw = 0.08 * (v + 0.7 - 0.8 * w)
        return jnp.stack([dv, dw], axis=-1).reshape(-1)


def block_fhn(key, N=4, P=2, leak=0.0):
    dense = dense_fhn(key, N, P)
    return BlockFHN(dense.state_size, P, dense.w_in, dense.i_ext, leak)


@pytest.mark.slow
def test_block_recurrence_matches_dense(getkey):
    """`linear_recurrence` with (T, N, k, k) blocks equals it with the same
    matrices as block-diagonal (T, D, D) ones, both scans, forwards and back."""
    T, N, k = 50, 3, 3
    blocks = 0.5 * jr.normal(getkey(), (T, N, k, k))
    b = jr.normal(getkey(), (T, N * k))
    dense = jax.vmap(jax.scipy.linalg.block_diag)(*jnp.moveaxis(blocks, 1, 0))
    for scan in ("associative", "sequential"):
        for reverse in (False, True):
            got = lt.linear_recurrence(blocks, b, scan=scan, reverse=reverse)
            want = lt.linear_recurrence(dense, b, scan=scan, reverse=reverse)
            assert max_abs_diff(got, want) < 1e-10


@pytest.mark.slow
def test_block_newton_matches_sequential(getkey):
    """Block Newton (the default for a block neuron) at Δt = 0.1, where it needs
    the automatic damping, with both recurrences and with `ImplicitEuler`."""
    neuron, x0 = block_fhn(getkey()), jnp.full(8, 0.1)
    inputs = jr.normal(getkey(), (200, 2))
    assert lt.ParallelNewton().resolved_method(neuron) == "block"
    for disc in (lt.Euler(), lt.ImplicitEuler()):
        seq = lt.solve(
            neuron, x0, inputs, solver=lt.Sequential(), dt=0.1, discretisation=disc
        ).states
        for recurrence in (lt.SequentialScan(), lt.AssociativeScan()):
            solver = lt.ParallelNewton(recurrence=recurrence)
            par = lt.solve(
                neuron, x0, inputs, solver=solver, dt=0.1, discretisation=disc
            )
            assert max_abs_diff(par.states, seq) <= 1e-10
    dense = lt.solve(
        dense_fhn(jr.key(0)), x0, inputs, solver=lt.Sequential(), dt=0.1
    ).states
    same = lt.solve(
        block_fhn(jr.key(0)), x0, inputs, solver=lt.ParallelNewton(), dt=0.1
    ).states
    assert max_abs_diff(dense, same) <= 1e-10
    # float32
    n32 = jax.tree.map(
        lambda a: a.astype(jnp.float32) if eqx.is_array(a) else a, neuron
    )
    x32, u32 = x0.astype(jnp.float32), inputs.astype(jnp.float32)
    seq32 = lt.solve(n32, x32, u32, solver=lt.Sequential(), dt=0.1).states
    par32 = lt.solve(n32, x32, u32, solver=lt.ParallelNewton(), dt=0.1).states
    assert max_abs_diff(par32, seq32) <= 1e-5


def test_block_gradients_match_autodiff_through_scan(getkey):
    """The fixed-point adjoint with transposed blocks, for every input of the
    solve, against autodiff through a plain `lax.scan` (Δt small enough that
    exact Newton needs no damping, and at Δt = 0.1 where it does)."""
    neuron, x0 = block_fhn(getkey()), jnp.full(8, 0.1)
    inputs = jr.normal(getkey(), (60, 2))
    for dt in (0.02, 0.1):

        def loss(n, x0, u):
            sol = lt.solve(n, x0, u, solver=lt.ParallelNewton(), dt=dt)
            return _loss(sol.states, u)

        def reference(n, x0, u):
            return _loss(scan_states(n, x0, u, dt), u)

        got = eqx.filter_grad(loss)(neuron, x0, inputs)
        want = eqx.filter_grad(reference)(neuron, x0, inputs)
        assert max_abs_diff(got, want) < 1e-10
        g = jax.grad(lambda a, b: loss(neuron, a, b), argnums=(0, 1))(x0, inputs)
        w = jax.grad(lambda a, b: reference(neuron, a, b), argnums=(0, 1))(x0, inputs)
        assert max_abs_diff(g, w) < 1e-10


def test_misdeclared_block_is_named(getkey):
    """A neuron declared block-diagonal whose v_i sees the previous neuron's v:
    `check_jacobian_structure` names the variables and neurons, and the block
    Newton solve raises on the forward pass and in the gradient."""
    neuron, x0 = block_fhn(getkey(), leak=0.3), jnp.full(8, 0.1)
    with pytest.raises(
        ValueError,
        match=r"dx_2/dt \(neuron 1\) depends on x_0 "
        r"\(neuron 0\)",
    ):
        lt.check_jacobian_structure(neuron)
    inputs = jr.normal(getkey(), (40, 2))
    with pytest.raises(Exception, match="couples variables of different blocks"):
        lt.solve(neuron, x0, inputs, solver=lt.ParallelNewton(), dt=0.02)
    with pytest.raises(Exception, match="couples variables of different blocks"):
        jax.grad(
            lambda u: jnp.sum(
                lt.solve(neuron, x0, u, solver=lt.Sequential(), dt=0.02).states
            )
        )(inputs)
    lt.check_jacobian_structure(block_fhn(getkey()))  # the honest one passes


class _BadBlock(lt.AbstractLiquidNeuron):
    state_size: int = 6
    input_size: int = 1
    jacobian_structure: ClassVar[str] = "block"

    def vector_field(self, x, u):
        return -x


@pytest.mark.parametrize(
    "block_size, match",
    [
        (None, "positive integer class attribute `block_size`"),
        (0, "got 0"),
        (True, "got True"),
        (4, "not a multiple of its block_size=4"),
    ],
)
def test_block_size_validated(block_size, match):
    cls = type(
        "Bad", (_BadBlock,), {} if block_size is None else {"block_size": block_size}
    )
    neuron = cls()
    inputs, x0 = jnp.zeros((5, 1)), jnp.zeros(6)
    with pytest.raises(ValueError, match=match):
        lt.solve(neuron, x0, inputs, solver=lt.ParallelNewton())
    with pytest.raises(ValueError, match=match):
        lt.check_jacobian_structure(neuron)
