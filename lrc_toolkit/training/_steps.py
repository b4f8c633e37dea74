"""Objectives (loss and metrics of one sequence), the compiled train and evaluation
steps, and evaluation over a whole split."""

import dataclasses
import functools
import inspect
import warnings
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ._data import Arrays, batches, round_to_mesh, to_devices


# ----------------------------------------------------------------------------------
# Objectives: (model, x, mask, y, times) -> (loss, {metric: value}) for ONE sequence


def _call(model, x, mask, times):
    return model(x, mask) if times is None else model(x, mask, ts=times)


def task_objective(model, x, mask, y, times=None):
    """The loss and metrics of [`LrcSSM`][lrc_toolkit.models.LrcSSM]'s `task`, from
    one forward pass. Classification: softmax cross-entropy and `accuracy`.
    Regression: the MSE (also reported as `mse`, with the `mae`) of the model's
    output against one target per sequence (`y` of shape (O,); a `"per_step"`
    readout is averaged over the valid steps first), or of the output at each valid
    step (`y` of shape (T, O))."""
    out = _call(model, x, mask, times)
    if model.task == "classification":
        loss = optax.softmax_cross_entropy_with_integer_labels(out, y)
        return loss, {
            "accuracy": (jnp.argmax(out).astype(y.dtype) == y).astype(loss.dtype)
        }
    y = y.astype(out.dtype)
    if out.ndim == 1:  # a pooled readout ("mean" or "last"): one output per sequence
        if y.ndim != 1:
            raise ValueError(
                f"The model's readout={model.readout!r} gives one output per "
                f"sequence, but the targets have one per step (shape {y.shape}): "
                "build it with `readout='per_step'`."
            )
        err = out - y
        return jnp.mean(err**2), {
            "mse": jnp.mean(err**2),
            "mae": jnp.mean(jnp.abs(err)),
        }
    if y.ndim == 1:  # one target per sequence: the mean output over valid steps
        count = jnp.sum(mask).astype(out.dtype)
        err = jnp.sum(jnp.where(mask[:, None], out, 0), axis=0) / count - y
        return jnp.mean(err**2), {
            "mse": jnp.mean(err**2),
            "mae": jnp.mean(jnp.abs(err)),
        }
    # one target per step: the errors over the valid steps
    n = jnp.sum(mask).astype(out.dtype) * y.shape[-1]
    err = jnp.where(mask[:, None], out - y, 0)
    loss = jnp.sum(err**2) / n
    return loss, {"mse": loss, "mae": jnp.sum(jnp.abs(err)) / n}


def _task_loss(model, x, mask, y, times=None):
    return task_objective(model, x, mask, y, times)[0]


def _task_metrics(model, x, mask, y, times=None):
    return task_objective(model, x, mask, y, times)[1]


def _no_metrics(model, x, mask, y, times=None):
    return {}


def _takes_times(fn) -> bool:
    """Whether `fn` takes time stamps as the keyword `ts`."""
    try:
        return "ts" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


@dataclasses.dataclass(frozen=True)
class Hooked:
    """A user's `loss(model, x, mask, y)` and `metrics(model, x, mask, y)` hooks as
    one objective. Hashable, so that fits with the same hooks share compilations;
    the time stamps are passed as `ts=` to each hook that takes it."""

    loss: Callable
    metrics: Callable

    def __call__(self, model, x, mask, y, times=None):
        def call(fn):
            if times is not None and _takes_times(fn):
                return fn(model, x, mask, y, ts=times)
            return fn(model, x, mask, y)

        loss = jnp.asarray(call(self.loss))
        if loss.shape != ():
            raise ValueError(
                f"`loss(model, x, mask, y)` must return a scalar for one sequence, got "
                f"shape {loss.shape}; `fit` batches it with `jax.vmap`."
            )
        return loss, dict(call(self.metrics))


def make_objective(model, loss: Callable | None, metrics: Callable | None, times):
    """The objective `fit` and `evaluate` use, from the hooks (`None`: the defaults
    of the model's `task`). Warns when time stamps would be dropped."""
    task = getattr(model, "task", None)
    if loss is None and task is None:
        raise TypeError(
            f"`{type(model).__name__}` has no `task` attribute, so `fit` cannot pick "
            "a loss: pass `loss=fn` with `fn(model, x, mask, y) -> scalar` for one "
            "sequence (x: (T, P), mask: (T,), y: one target)."
        )
    for fn, name in ((loss, "loss"), (metrics, "metrics")):
        if fn is not None and not callable(fn):
            raise TypeError(f"`{name}` must be a function, got {type(fn).__name__}.")
    if times is not None:
        takes = _takes_times(model.__call__) if loss is None else _takes_times(loss)
        if not takes:
            warnings.warn(
                "The data have time stamps (`times`), but "
                + ("the model's `__call__`" if loss is None else "`loss`")
                + " takes no `ts=` argument: they are ignored (uniform steps).",
                stacklevel=3,
            )
    if loss is None and metrics is None:
        return task_objective
    metrics = metrics or (_task_metrics if task is not None else _no_metrics)
    return Hooked(loss or _task_loss, metrics)


# ----------------------------------------------------------------------------------
# Compiled steps


def _sums(objective, model, x, mask, y, times, weight):
    """Weighted sums over a batch of the loss and of each metric."""
    losses, metrics = jax.vmap(objective, in_axes=(None, 0, 0, 0, 0))(
        model, x, mask, y, times
    )
    weight = weight.astype(losses.dtype)
    total = jnp.sum(weight * losses)
    return total, {
        k: jnp.sum(weight * jnp.asarray(v).astype(losses.dtype))
        for k, v in metrics.items()
    }


@eqx.filter_jit
def train_step(model, opt_state, optimiser, objective, batch, weight):
    """One optimiser step on the weighted mean loss of a batch."""

    def batch_loss(model):
        total, metric_sums = _sums(objective, model, *batch, weight)
        return total / jnp.sum(weight.astype(total.dtype)), (total, metric_sums)

    (_, (loss_sum, metric_sums)), grads = eqx.filter_value_and_grad(
        batch_loss, has_aux=True
    )(model)
    params = eqx.filter(model, eqx.is_inexact_array)
    # optax mixes Python scalars and int32 counters (Adam's bias correction), which
    # strict dtype promotion rejects: run the optimiser under standard promotion.
    with jax.numpy_dtype_promotion("standard"):
        updates, opt_state = optimiser.update(grads, opt_state, params)
    model = eqx.apply_updates(model, updates)
    return model, opt_state, loss_sum, metric_sums


@eqx.filter_jit
def _eval_step(model, objective, batch, weight):
    return _sums(objective, model, *batch, weight)


def summarise(loss_sum, metric_sums: dict, n: int) -> dict:
    """Means over `n` examples: `{"loss", <metrics>..., "num_examples"}` (the sums
    may be device arrays: read here, once)."""
    means = {k: float(v) / n for k, v in metric_sums.items()}
    return {"loss": float(loss_sum) / n, **means, "num_examples": n}


def evaluate_arrays(model, objective, arrays: Arrays, batch_size, mesh=None) -> dict:
    """The mean loss and metrics of `model` over a checked split."""
    n = len(arrays)
    batch_size = round_to_mesh(min(batch_size, n), mesh)
    loss_sum, metric_sums = 0.0, {}
    for idx, weight in batches(n, batch_size, np.arange(n)):
        *batch, weight = to_devices(mesh, (*arrays.take(idx), weight))
        l, m = _eval_step(model, objective, tuple(batch), weight)
        loss_sum = loss_sum + l
        metric_sums = {k: metric_sums.get(k, 0.0) + v for k, v in m.items()}
    return summarise(loss_sum, metric_sums, n)


def train_epoch(
    model, opt_state, optimiser, objective, arrays, batch_size, order, mesh
):
    """One pass over the training split in the given order; returns the model, the
    optimiser state and the epoch's mean training loss and metrics."""
    loss_sum, metric_sums = 0.0, {}
    for idx, weight in batches(len(arrays), batch_size, order):
        *batch, weight = to_devices(mesh, (*arrays.take(idx), weight))
        model, opt_state, l, m = train_step(
            model, opt_state, optimiser, objective, tuple(batch), weight
        )
        # Summed on the device: no host sync per batch (asynchronous dispatch runs
        # ahead); `summarise` reads the sums once per epoch.
        loss_sum = loss_sum + l
        metric_sums = {k: metric_sums.get(k, 0.0) + v for k, v in m.items()}
    return model, opt_state, summarise(loss_sum, metric_sums, len(arrays))


# ----------------------------------------------------------------------------------
# The optimiser


def make_optimiser(config, steps_per_epoch: int = 1) -> optax.GradientTransformation:
    """Global-norm clipping at `config.clip_norm`, then Adam (the paper's setup), or
    AdamW with `config.weight_decay`; the learning rate follows `config.schedule`
    and `config.warmup_epochs`, counted in optimiser steps (`steps_per_epoch` per
    epoch: the schedule is part of the optimiser state, so a resumed run continues
    it)."""
    # Only the settings that change the optimiser reach the cache key, so that runs
    # differing in e.g. `epochs` alone share one compiled train step.
    cosine = config.schedule == "cosine"
    return _optimiser(
        config.learning_rate,
        config.clip_norm,
        config.schedule,
        config.warmup_epochs * steps_per_epoch,
        config.epochs * steps_per_epoch if cosine else 1,
        config.weight_decay,
    )


@functools.lru_cache(maxsize=16)
def _optimiser(
    learning_rate: float,
    clip_norm: float,
    schedule: str = "constant",
    warmup_steps: int = 0,
    total_steps: int = 1,
    weight_decay: float = 0.0,
) -> optax.GradientTransformation:
    # Cached, so that runs with the same settings (e.g. several seeds) share the
    # compiled train step: the optimiser is a static argument of `train_step`.
    if schedule == "cosine":
        decay = optax.cosine_decay_schedule(learning_rate, total_steps - warmup_steps)
    else:
        decay = optax.constant_schedule(learning_rate)
    if warmup_steps:
        warmup = optax.linear_schedule(0.0, learning_rate, warmup_steps)
        rate = optax.join_schedules([warmup, decay], [warmup_steps])
    elif schedule == "constant":
        rate = learning_rate  # a plain float: the paper's optimiser, unchanged
    else:
        rate = decay
    adam = (
        optax.adamw(rate, weight_decay=weight_decay)
        if weight_decay
        else optax.adam(rate)
    )
    return optax.chain(optax.clip_by_global_norm(clip_norm), adam)
