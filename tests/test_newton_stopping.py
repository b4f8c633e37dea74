"""The Newton stopping rule at its boundary, against a plain-loop Newton.

`ParallelNewton` stops at the first iterate $k$ with
$\\max_t |x^{(k)}_t - x^{(k-1)}_t| / (\\text{atol} + \\text{rtol}\\,|x^{(k)}_t|) \\le 1$,
or earlier by the contraction estimate $\\theta/(1-\\theta)$ of Hairer & Wanner. A
review that planted bugs found the suite blind where `atol` and `rtol |x|` are of
the same size (there `max(atol, rtol |x|)` and `atol + rtol |x|` differ by up to 2x).
Here the iterates come from a numpy loop of exact Newton, the rule is applied to
them as documented, and the solver must stop at the same iteration for a grid of
tolerances; the grid is checked to contain tolerances at which the plausible wrong
rules stop elsewhere, so the test can fail."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import lrc_toolkit as lt


T, D, P = 120, 4, 2


def _iterates(neuron, x0, inputs, disc, K):
    """Exact Newton on the whole trajectory, in numpy: $x^{(0)} = 0$ and
    $x^{(k+1)}_t = \\Phi(x^{(k)}_{t-1}) + J_t (x^{(k+1)}_{t-1} - x^{(k)}_{t-1})$."""
    d = jax.vmap(neuron.drive)(inputs)
    dt = jnp.asarray(1.0)

    def value_and_factor(p, dd):
        step = lambda q: disc.step(neuron, q, dd, dt)
        return jax.jvp(step, (p,), (jnp.ones_like(p),))

    linearise = jax.jit(jax.vmap(value_and_factor))
    x0 = np.asarray(x0)
    X = np.zeros((T, D))
    iterates = [X]
    for _ in range(K):
        prev = np.concatenate([x0[None], X[:-1]])
        values, J = (np.asarray(a) for a in linearise(jnp.asarray(prev), d))
        new, x = np.empty_like(X), x0
        for t in range(T):
            x = values[t] + J[t] * (x - prev[t])
            new[t] = x
        X = new
        iterates.append(X)
    return iterates


def _stop(iterates, atol, rtol, rule):
    """The first iteration the stopping rule accepts (`rule="documented"`), or
    where a plausible mistake would (`"max"`: max(atol, rtol|x|);
    `"no_contraction"`: without the contraction estimate)."""
    last = np.inf
    for k in range(1, len(iterates)):
        new = iterates[k]
        delta = np.abs(new - iterates[k - 1])
        if rule == "max":
            tol = np.maximum(atol, rtol * np.abs(new))
        else:
            tol = atol + rtol * np.abs(new)
        ratio = np.max(delta / tol)
        step = np.max(delta)
        contracting = np.isfinite(last) and step < 0.5 * last
        theta = step / last if contracting else 1.0
        estimate = contracting and rule != "no_contraction"
        if ratio <= 1 or (estimate and theta / (1 - theta) * ratio <= 1):
            return k
        last = step
    raise AssertionError("the loop did not converge within the iterates given")


@pytest.fixture(scope="module")
def problem():
    k1, k2 = jr.split(jr.key(7))
    # Parameters doubled: slower contraction, so the iterations spread over the
    # tolerance grid.
    neuron = lt.LRC(D, P, key=k1)
    neuron = jax.tree.map(lambda p: 2.0 * p if eqx_inexact(p) else p, neuron)
    inputs = jr.normal(k2, (T, P))
    x0 = 0.5 * jnp.ones(D)
    iterates = _iterates(neuron, x0, inputs, lt.Euler(), K=40)
    return neuron, x0, inputs, iterates


def eqx_inexact(p):
    return isinstance(p, jax.Array) and jnp.issubdtype(p.dtype, jnp.inexact)


# atol and rtol of the same size against states of order one: the boundary. A fine
# grid, from which the tolerances where a plausible mistake stops at another
# iteration are picked (Newton converges fast, so such points are rare), plus a few.
FINE = [(a, r * a) for a in np.geomspace(1e-10, 1e-3, 57) for r in (0.5, 1.0, 2.0)]
MISTAKES = ("max", "no_contraction")


def test_solver_stops_where_the_documented_rule_does(problem):
    neuron, x0, inputs, iterates = problem
    scale = np.max(np.abs(iterates[-1]))
    assert 0.3 < scale < 3, scale  # |x| ~ 1: atol and rtol |x| are comparable
    chosen = {FINE[0]: "documented", FINE[-1]: "documented"}
    for rule in MISTAKES:
        hits = [
            tol
            for tol in FINE
            if _stop(iterates, *tol, rule) != _stop(iterates, *tol, "documented")
        ]
        # The grid sits where the plausible mistakes change the answer.
        assert hits, rule
        chosen.setdefault(hits[len(hits) // 2], rule)
    for (atol, rtol), rule in chosen.items():
        solver = lt.ParallelNewton(atol=float(atol), rtol=float(rtol))
        sol = lt.solve(neuron, x0, inputs, solver=solver)
        expected = _stop(iterates, atol, rtol, "documented")
        assert sol.converged
        assert int(sol.iterations) == expected, (atol, rtol, rule)
        # The states returned are the iterate the rule accepted.
        assert float(jnp.max(jnp.abs(sol.states - iterates[expected]))) <= 1e-12
