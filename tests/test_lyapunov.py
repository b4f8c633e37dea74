"""`lyapunov_exponent` against exponents known in closed form (linear maps) and
against a plain numpy loop of the QR method on the full Jacobians."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jaxtyping import Array, Float

import lrc_toolkit as lt


class _Decay(lt.AbstractLiquidNeuron):
    """dx/dt = -k x + u: the Euler step is x_t = (1 - Δt k) ⊙ x_{t-1} + Δt u_t."""

    k: Float[Array, " D"]
    state_size: int = 4
    input_size: int = 4
    jacobian_structure = "diagonal"

    def vector_field(self, x, u):
        return -self.k * x + u


class _Linear(lt.AbstractLiquidNeuron):
    """dx/dt = (A - I) x + u: with Δt = 1 the Euler step is x_t = A x_{t-1} + u_t."""

    A: Float[Array, "D D"]
    state_size: int = 4
    input_size: int = 4
    jacobian_structure = "dense"

    def vector_field(self, x, u):
        return self.A @ x - x + u


K = jnp.array([0.5, 1.9, 0.2, 1.0])  # Euler factors 1 - k: 0.5, -0.9, 0.8, 0
T = 400
# A finite-time estimate differs from the exponent by O(1/T) (the log of the
# initial tangent's component along the leading direction, over T).
TOL = 8 / T


def _inputs(key, T=T, P=4):
    return jr.normal(key, (T, P))


def test_diagonal_linear_recurrence(getkey):
    u = _inputs(getkey())
    x0 = jnp.ones(4)
    lam = lt.lyapunov_exponent(_Decay(K), x0, u, discretisation=lt.Euler())
    assert lam.shape == ()
    # the largest |factor| is |-0.9|: the sign must not matter
    assert abs(float(lam) - np.log(0.9)) < TOL
    # three exponents (the fourth is log 0 = -inf)
    lams = lt.lyapunov_exponent(_Decay(K), x0, u, num_exponents=3)
    assert lams.shape == (3,)
    np.testing.assert_allclose(lams, np.log([0.9, 0.8, 0.5]), atol=TOL)
    # per unit time: divide by Δt; at Δt = 0.5 the factors are 1 - 0.5 k
    lam = lt.lyapunov_exponent(_Decay(K), x0, u, dt=0.5)
    assert abs(float(lam) - np.log(0.9)) < TOL


def test_implicit_step(getkey):
    """Implicit Euler's factor is 1 / (1 + Δt k): the derivative of the implicit
    step, not of a guess."""
    u = _inputs(getkey())
    lam = lt.lyapunov_exponent(
        _Decay(K), jnp.ones(4), u, dt=2.0, discretisation=lt.ImplicitEuler()
    )
    assert abs(float(lam) - np.log(1 / (1 + 2.0 * 0.2))) < TOL


def test_renormalising_less_often_agrees(getkey):
    """For a linear map the norm of the product does not depend on when the
    tangent is renormalised."""
    u = _inputs(getkey())
    n = _Decay(K)
    every = lt.lyapunov_exponent(n, jnp.ones(4), u, num_exponents=2)
    seldom = lt.lyapunov_exponent(
        n, jnp.ones(4), u, num_exponents=2, reorthonormalise_every=7
    )
    np.testing.assert_allclose(every, seldom, rtol=1e-10)


def _normal_matrix(key):
    """Q diag(r R(θ), a, b) Q^T with Q orthogonal: normal, with eigenvalue moduli
    r, r, |a|, |b|."""
    r, theta, a, b = 0.95, 0.7, -0.6, 0.3
    B = np.zeros((4, 4))
    B[:2, :2] = r * np.array(
        [[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]]
    )
    B[2, 2], B[3, 3] = a, b
    Q, _ = np.linalg.qr(np.asarray(jr.normal(key, (4, 4))))
    return Q @ B @ Q.T


def test_dense_normal_matrix(getkey):
    A = _normal_matrix(getkey())
    expected = np.sort(np.log(np.abs(np.linalg.eigvals(A))))[::-1]
    n = _Linear(jnp.asarray(A))
    u = _inputs(getkey())
    lam = lt.lyapunov_exponent(n, jnp.zeros(4), u)
    # the spectral radius: for a normal matrix also the largest singular value
    assert abs(float(lam) - np.log(np.max(np.abs(np.linalg.eigvals(A))))) < TOL
    two = lt.lyapunov_exponent(n, jnp.zeros(4), u, num_exponents=2)
    np.testing.assert_allclose(two, expected[:2], atol=TOL)
    four = lt.lyapunov_exponent(n, jnp.zeros(4), u, num_exponents=4)
    np.testing.assert_allclose(four, expected, atol=TOL)


def _numpy_qr_exponents(jacobians, k):
    """The QR method, plainly: Q_t R_t = J_t Q_{t-1}, from Q_0 = the first k unit
    vectors; exponents = mean log |diag R|, in decreasing order."""
    Q = np.eye(jacobians.shape[1])[:, :k]
    logs = np.zeros(k)
    for J in jacobians:
        Q, R = np.linalg.qr(J @ Q)
        logs += np.log(np.abs(np.diag(R)))
    return np.sort(logs / len(jacobians))[::-1]


def _jacobians(step, x0, u):
    """States by a plain `lax.scan` of `step`, then every step's full Jacobian by
    `jax.jacfwd` at the state it starts from."""
    _, states = jax.lax.scan(lambda x, v: (step(x, v), step(x, v)), x0, u)
    prev = jnp.concatenate([x0[None], states[:-1]])
    return np.asarray(jax.vmap(jax.jacfwd(step))(prev, u))


def test_nonlinear_against_numpy_qr(getkey):
    neuron = lt.LRC(8, 3, key=getkey())
    x0 = jr.normal(getkey(), (8,))
    u = _inputs(getkey(), T=200, P=3)
    dt = 0.5
    step = lambda x, v: x + dt * neuron.vector_field(x, v)  # Euler
    jacobians = _jacobians(step, x0, u)
    expected = _numpy_qr_exponents(jacobians, 8)
    full = lt.lyapunov_exponent(neuron, x0, u, dt=dt, num_exponents=8)
    # the sum of all exponents is mean log |det J_t|: independent of the start
    np.testing.assert_allclose(np.sum(full), np.sum(expected), rtol=1e-8)
    np.testing.assert_allclose(full, expected, atol=4 / 200)
    lam = lt.lyapunov_exponent(neuron, x0, u, dt=dt)
    assert abs(float(lam) - expected[0]) < 4 / 200
    # the given trajectory is used as it is
    states = lt.solve(
        neuron, x0, u, dt=dt, solver=lt.Sequential(), discretisation=lt.Euler()
    ).states
    again = lt.lyapunov_exponent(neuron, x0, u, dt=dt, states=states)
    np.testing.assert_allclose(again, lam, rtol=1e-12)


def test_complex_state_in_real_arithmetic(getkey):
    """A complex state of size D is a real one of size 2D: compare with the QR
    method on the Jacobian of the realified step."""
    neuron = lt.ComplexLRC(3, 2, key=getkey())
    x0 = jnp.zeros(3, neuron.state_dtype)
    u = _inputs(getkey(), T=150, P=2)
    step = lambda x, v: x + neuron.vector_field(x, v)

    def real_step(y, v):
        out = step(jax.lax.complex(y[:3], y[3:]), v)
        return jnp.concatenate([out.real, out.imag])

    jacobians = _jacobians(real_step, jnp.zeros(6), u)
    expected = _numpy_qr_exponents(jacobians, 6)
    full = lt.lyapunov_exponent(
        neuron, x0, u, num_exponents=6, discretisation=lt.Euler()
    )
    np.testing.assert_allclose(np.sum(full), np.sum(expected), rtol=1e-8)
    np.testing.assert_allclose(full, expected, atol=4 / 150)
    with pytest.raises(ValueError, match="exceeds the dimension of the tangent"):
        lt.lyapunov_exponent(neuron, x0, u, num_exponents=7)


def test_bad_inputs(getkey):
    n = _Decay(K)
    x0, u = jnp.ones(4), _inputs(getkey(), T=20)
    with pytest.raises(ValueError, match="exceeds the dimension of the tangent"):
        lt.lyapunov_exponent(n, x0, u, num_exponents=5)
    for bad in (0, -1, True):
        with pytest.raises(ValueError, match="`num_exponents` must be a positive"):
            lt.lyapunov_exponent(n, x0, u, num_exponents=bad)
    with pytest.raises(ValueError, match="`reorthonormalise_every` must be"):
        lt.lyapunov_exponent(n, x0, u, reorthonormalise_every=0)
    with pytest.raises(ValueError, match=r"`states` must have shape \(20, 4\)"):
        lt.lyapunov_exponent(n, x0, u, states=jnp.zeros((19, 4)))
    with pytest.raises(ValueError, match="`x0` must have shape"):
        lt.lyapunov_exponent(n, jnp.ones(3), u)
    with pytest.raises(ValueError, match="`inputs` must have shape"):
        lt.lyapunov_exponent(n, x0, u[0])
