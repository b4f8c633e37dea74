import jax
import jax.numpy as jnp
from jaxtyping import Array, Inexact


def _combine_diagonal(left, right):
    a1, b1 = left
    a2, b2 = right
    return a2 * a1, a2 * b1 + b2


def _combine_dense(left, right):
    a1, b1 = left
    a2, b2 = right
    return a2 @ a1, jnp.einsum("...ij,...j->...i", a2, b1) + b2


def linear_recurrence(
    a: Inexact[Array, "T D"] | Inexact[Array, "T D D"],
    b: Inexact[Array, "T D"],
    *,
    reverse: bool = False,
) -> Inexact[Array, "T D"]:
    r"""Solve $x_t = a_t x_{t-1} + b_t$, $x_0 = 0$, for all $t$ at once with
    `jax.lax.associative_scan`: $O(T)$ work, $O(\log T)$ depth.

    `a` is diagonal (shape `(T, D)`, elementwise product) or dense (shape
    `(T, D, D)`, matrix product). With `reverse=True` the recurrence runs backwards,
    $x_t = a_t x_{t+1} + b_t$ (used by the adjoint). The composition of the affine
    maps $x \mapsto a_1 x + b_1$ then $x \mapsto a_2 x + b_2$ is
    $(a_2 a_1, a_2 b_1 + b_2)$, which is associative.
    """
    if a.ndim == b.ndim:
        combine = _combine_diagonal
    elif a.ndim == b.ndim + 1:
        combine = _combine_dense
    else:
        raise ValueError(f"Incompatible shapes a: {a.shape}, b: {b.shape}.")
    _, x = jax.lax.associative_scan(combine, (a, b), reverse=reverse)
    return x
