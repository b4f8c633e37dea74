import abc
from collections.abc import Callable
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Inexact

from .._blocks import check_recurrence, compose, matvec
from .._checks import check_choice


SCANS = ("auto", "associative", "sequential")


def combine(left, right):
    r"""The composition of affine maps $(a_1, b_1)$ then $(a_2, b_2)$:
    $(a_2 a_1, a_2 b_1 + b_2)$, for diagonal, dense or block transitions."""
    a1, b1 = left
    a2, b2 = right
    return compose(a2, a1, b1), matvec(a2, b1) + b2


def default_scan() -> Literal["associative", "sequential"]:
    """The linear-recurrence algorithm `scan="auto"` picks on the default backend.

    On a CPU a plain `lax.scan` does the least work ($T$ fused multiply-adds per
    channel, one pass over memory) and its per-step overhead is small, so it beats
    the associative scan, which does two to three times the work in $\\log T$ passes
    (see `benchmarks/scan.py`). On accelerators the associative scan's $O(\\log T)$
    depth wins.
    """
    return "sequential" if jax.default_backend() == "cpu" else "associative"


def sequential(a, b, reverse):
    """The recurrence by `jax.lax.scan`, one step after another."""

    def step(x, ab):
        a_t, b_t = ab
        x = matvec(a_t, x) + b_t
        return x, x

    _, x = jax.lax.scan(step, jnp.zeros_like(b[0]), (a, b), reverse=reverse)
    return x


def linear_recurrence(
    a: Inexact[ArrayLike, "T D"]
    | Inexact[ArrayLike, "T D D"]
    | Inexact[ArrayLike, "T N K K"],
    b: Inexact[ArrayLike, "T D"],
    *,
    reverse: bool = False,
    scan: Literal["auto", "associative", "sequential"] = "auto",
) -> Inexact[Array, "T D"]:
    r"""Solve $x_t = a_t x_{t-1} + b_t$, $x_0 = 0$, for all $t$ at once.

    `a` is diagonal (shape `(T, D)`, elementwise product), dense (shape
    `(T, D, D)`, matrix product) or block-diagonal (shape `(T, N, k, k)` with
    $D = N k$: block $n$ acts on entries `[n*k:(n+1)*k]`, the layout of
    `jacobian_structure = "block"` neurons). With `reverse=True` the recurrence runs backwards,
    $x_t = a_t x_{t+1} + b_t$ (used by the adjoint).

    **Arguments:**

    - `a`, `b`: the transition factors and offsets.
    - `reverse`: run the recurrence from $t = T$ down to $t = 1$.
    - `scan`: the algorithm.
        - `"associative"`: `jax.lax.associative_scan` with the composition of
          affine maps $(a_1, b_1) \circ (a_2, b_2) = (a_2 a_1, a_2 b_1 + b_2)$:
          $O(T)$ work, $O(\log T)$ depth. The fast choice on GPUs and TPUs.
        - `"sequential"`: a `jax.lax.scan`, one step after another: $O(T)$ work
          and depth, the least work and memory traffic. The fast choice on CPUs.
        - `"auto"` (default): `"sequential"` when JAX's default backend is the
          CPU, else `"associative"`.

    **Returns:**

    The states $x_1, \dots, x_T$, shape `(T, D)`.
    """
    a, b = jnp.asarray(a), jnp.asarray(b)
    check_recurrence(a, b)
    check_choice("scan", scan, SCANS)
    if scan == "auto":
        scan = default_scan()
    if scan == "sequential":
        return sequential(a, b, reverse)
    _, x = jax.lax.associative_scan(combine, (a, b), reverse=reverse)
    return x


class AbstractRecurrence(eqx.Module):
    """How each Newton step's linear recurrence $x_t = a_t x_{t-1} + b_t$ is solved
    (and, reversed, the fixed-point adjoint's). Pass one as
    `ParallelNewton(recurrence=...)`."""

    @abc.abstractmethod
    def __call__(
        self,
        a: Inexact[Array, "T D"] | Inexact[Array, "T D D"] | Inexact[Array, "T N K K"],
        b: Inexact[Array, "T D"],
        reverse: bool = False,
    ) -> Inexact[Array, "T D"]:
        """Solve the recurrence (from $x_0 = 0$), backwards with `reverse=True`."""

    def around(self, solve_fn: Callable, x0, inputs, dt, init):
        """Run `solve_fn(x0, inputs, dt, init) -> Solution` with the per-step arrays
        laid out as this recurrence needs them (identity here; the sharded
        recurrence pads and shards the time axis)."""
        return solve_fn(x0, inputs, dt, init)


class AssociativeScan(AbstractRecurrence):
    r"""`jax.lax.associative_scan` with the composition of affine maps
    $(a_1, b_1) \circ (a_2, b_2) = (a_2 a_1, a_2 b_1 + b_2)$: $O(T)$ work,
    $O(\log T)$ depth. The fast choice on GPUs and TPUs."""

    def __call__(self, a, b, reverse=False):
        return linear_recurrence(a, b, reverse=reverse, scan="associative")


class SequentialScan(AbstractRecurrence):
    """A `jax.lax.scan`, one step after another: the least work and memory traffic,
    $O(T)$ depth. The fast choice on CPUs."""

    def __call__(self, a, b, reverse=False):
        return linear_recurrence(a, b, reverse=reverse, scan="sequential")


def default_recurrence() -> AbstractRecurrence:
    """[`SequentialScan`][lrc_toolkit.SequentialScan] when JAX's default backend is
    the CPU, else [`AssociativeScan`][lrc_toolkit.AssociativeScan]."""
    return SequentialScan() if default_scan() == "sequential" else AssociativeScan()
