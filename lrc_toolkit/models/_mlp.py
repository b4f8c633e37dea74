"""The MLPs of the model (encoder, blocks, decoder)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr

from .._checks import check_choice


ACTIVATIONS = {"gelu": jax.nn.gelu, "relu": jax.nn.relu}
INITS = ("he_uniform", "equinox")


def mlp(in_size, out_size, width, activation, init, *, dtype, key) -> eqx.nn.MLP:
    """A one-hidden-layer MLP; `init="he_uniform"`: He-uniform weights and zero
    biases as the reference implementation makes them (`jax.nn.initializers.
    he_uniform()` on Equinox's `(out, in)` weights, which it reads with its own
    `(in, out)` convention: uniform in +-sqrt(6 / out)), `"equinox"`: Equinox's
    default (uniform weights and biases in +-1/sqrt(in))."""
    check_choice("init", init, INITS)
    net = eqx.nn.MLP(
        in_size,
        out_size,
        width,
        1,
        activation=ACTIVATIONS[activation],
        dtype=dtype,
        key=key,
    )
    if init == "he_uniform":
        ikey = jr.fold_in(key, 1)
        weights = [layer.weight for layer in net.layers]
        keys = jr.split(ikey, len(weights))
        he = jax.nn.initializers.he_uniform()
        net = eqx.tree_at(
            lambda m: [layer.weight for layer in m.layers],
            net,
            [he(k, w.shape, dtype) for k, w in zip(keys, weights)],
        )
        net = eqx.tree_at(
            lambda m: [layer.bias for layer in m.layers],
            net,
            replace_fn=jnp.zeros_like,
        )
    return net
