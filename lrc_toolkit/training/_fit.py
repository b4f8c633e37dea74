import dataclasses
import json
import math
import os
import time
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.random as jr
import numpy as np
from jax.sharding import Mesh

from .._checks import check_integer
from ..distributed import replicate
from ._checkpoint import CheckpointError, deserialise, read_checkpoint
from ._config import TrainConfig
from ._data import check_split, round_to_mesh
from ._progress import epoch_record, ProgressBar
from ._run_dir import FORMAT, RunDir, train_state_like
from ._steps import evaluate_arrays, make_objective, make_optimiser, train_epoch
from ._stopping import _score, EarlyStopping


@dataclasses.dataclass(frozen=True)
class FitResult:
    """What [`fit`][lrc_toolkit.training.fit] returns.

    **Fields:**

    - `model`: the model at the best validation epoch (with
        `TrainConfig.ties_improve`, the last of the best).
    - `last_model`: the model after the last epoch run.
    - `best_epoch`: the (1-based) epoch of `model`.
    - `val_metrics`, `test_metrics`: the metrics of `model` on the validation and
        test sets (`test_metrics` is `None` without a test set): `loss`, each metric
        of the `metrics` hook, and `num_examples`. With the defaults for an
        [`LrcSSM`][lrc_toolkit.models.LrcSSM]: classification `{"loss",
        "accuracy", "num_examples"}`; regression `{"loss", "mse", "num_examples"}`
        (`loss` is the MSE).
    - `history`: one dict per epoch (`epoch`, `train_loss`, `val_loss`, ...).
    - `epochs_run`: the number of epochs completed.
    - `stop_reason`: `"early_stopping"` (patience spent), `"perfect_validation"`
        (100 % validation accuracy for `perfect_patience` epochs), `"max_epochs"`,
        or `"time_budget"` (resume to continue).
    """

    model: eqx.Module
    last_model: eqx.Module
    best_epoch: int
    val_metrics: dict
    test_metrics: dict | None
    history: list
    epochs_run: int
    stop_reason: str


# ----------------------------------------------------------------------------------
# The pieces of `fit`


def _check_arguments(model, config, out_dir, resume, metadata) -> dict:
    if not isinstance(model, eqx.Module):
        raise TypeError(
            f"`model` must be an Equinox module (e.g. an `lrc_toolkit.models.LrcSSM`), "
            f"got {type(model).__name__}."
        )
    if not isinstance(config, TrainConfig):
        raise TypeError(
            f"`config` must be a `TrainConfig`, got {type(config).__name__}."
        )
    if resume and out_dir is None:
        raise ValueError("`resume=True` needs the `out_dir` of the run to resume.")
    metadata = {} if metadata is None else dict(metadata)
    try:
        json.dumps(metadata)
    except TypeError as e:
        raise TypeError(f"`metadata` must be JSON-serialisable: {e}.") from None
    return {
        "model_class": type(model).__name__,
        "model_config": getattr(model, "config", None),
        "train_config": config.to_dict(),
        "metadata": metadata,
    }


def _initial_state(model, optimiser, rule: EarlyStopping, run: RunDir, resume):
    """`(model, optimiser state, best model, counters)`: fresh, or from the newest
    readable checkpoint in the run directory."""
    fresh = train_state_like(model, optimiser)
    loaded = run.load(fresh) if resume else None
    if loaded is None:
        state = {
            "epoch": 0,
            "best_epoch": 0,
            "best_val": None,
            "best_test": None,
            "stopping": rule.init(),
            "stop_reason": None,
            "history": [],
        }
        return (*fresh, state)
    state, tree = loaded
    if "stopping" not in state:  # written before the stopping rule had a state
        best = state.get("best_val")
        state["stopping"] = {
            "best": None if best is None else list(_score(best)),
            "bad_epochs": state.pop("bad_epochs", 0),
            "since_perfect": None,
        }
    return (*tree, state)


def _batch_size(config: TrainConfig, n: int, mesh) -> int:
    if mesh is not None and (jax.process_count() > 1 or config.batch_size % mesh.size):
        raise ValueError(
            f"`fit(mesh=...)` needs one process and a batch size that is a "
            f"multiple of the mesh's {mesh.size} devices; got "
            f"{jax.process_count()} processes and batch_size={config.batch_size}."
        )
    return round_to_mesh(min(config.batch_size, n), mesh)


def _check_finite(train_metrics: dict, epoch: int) -> None:
    if not math.isfinite(train_metrics["loss"]):
        raise FloatingPointError(
            f"The training loss became {train_metrics['loss']} in epoch {epoch}. "
            "Lower the learning rate or the step size `dt`; the last good "
            "checkpoint is unchanged."
        )


def _epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The data order of an epoch: a function of the seed and the epoch only, so
    that a resumed run needs no saved RNG state."""
    return np.asarray(jr.permutation(jr.fold_in(jr.key(seed), epoch), n))


class _Clock:
    """Epoch durations, and the wall-clock budget of one call of `fit`."""

    def __init__(self, budget: float | None):
        self.budget = budget
        self.start = self.last = time.perf_counter()

    def lap(self) -> float:
        """Seconds since the previous lap (or the start)."""
        now = time.perf_counter()
        seconds, self.last = now - self.last, now
        return seconds

    def spent(self, epoch_seconds: float) -> str | None:
        """`"time_budget"` if one more epoch this long would overrun the budget."""
        if self.budget is None:
            return None
        elapsed = time.perf_counter() - self.start
        return "time_budget" if elapsed + epoch_seconds > self.budget else None


def _stop_reason(state: dict, rule: EarlyStopping, config: TrainConfig):
    reason = rule.stop_reason(state["stopping"])
    return reason or ("max_epochs" if state["epoch"] >= config.epochs else None)


# ----------------------------------------------------------------------------------
# fit


def fit(
    model: eqx.Module,
    train: Any,
    val: Any,
    test: Any = None,
    *,
    loss: Callable | None = None,
    metrics: Callable | None = None,
    config: TrainConfig = TrainConfig(),
    out_dir: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
    metadata: dict | None = None,
    mesh: Mesh | None = None,
) -> FitResult:
    r"""Train an Equinox model (e.g. an [`LrcSSM`][lrc_toolkit.models.LrcSSM]) on
    sequences, with early stopping on a validation set and crash-safe checkpoints.

    Each epoch visits the training set in a seeded random order in batches of
    `config.batch_size` (a jit-compiled step over the `vmap`ped per-sequence loss;
    gradients clipped to global norm `config.clip_norm`, then Adam). After each
    epoch the model is evaluated on `val`; when the epoch is the new best (see
    [`TrainConfig`][lrc_toolkit.training.TrainConfig]: higher accuracy, ties broken
    by a lower loss, or the paper's rule) it is also evaluated on `test`, and those
    are the reported test metrics. Training stops after `config.patience` epochs
    without improvement, `config.perfect_patience` epochs after the validation
    accuracy first reaches 100 %, after `config.epochs`, or when
    `config.time_budget` is spent.

    With `out_dir`, every epoch writes

    - `last.eqx`: parameters, optimiser state, best model, counters and history,
        with their configuration and a SHA-256 checksum, written atomically; the
        previous one is kept as `prev.eqx`;
    - `best.eqx`: the best model so far (for `lrc-toolkit evaluate`);
    - `metrics.jsonl`: one JSON line per epoch; `config.json`.

    `resume=True` continues from the newest readable checkpoint (the data order of
    each epoch is a function of `config.seed` and the epoch number, so no RNG state
    is lost): a resumed run ends bit-identical to an uninterrupted one.

    **Arguments:**

    - `model`: the initial model, any Equinox module.
    - `train`, `val`, `test`: splits, any objects with `x` (N, T, P), `y`, and
        optionally `mask` (N, T) (True on a prefix of each sequence) and `times`
        (N, T) (time stamps, passed as `times=` to the model, or to `loss`, if it
        takes them), e.g. `dataset.train` from
        [`load_uea`][lrc_toolkit.data.load_uea]. `test` is optional. For the default
        loss, `y` holds labels (N,) for classification; for regression, targets
        (N, O) per sequence, compared with the mean output over the valid steps, or
        (N, T, O) per step.
    - `loss`: `loss(model, x, mask, y) -> scalar` for ONE sequence (`x` (T, P),
        `mask` (T,), `y` its target); `fit` batches it with `jax.vmap`. Default:
        from the model's `task` attribute (an `LrcSSM`'s): softmax cross-entropy
        for `"classification"`, masked MSE for `"regression"`. Required for a
        model without `task`.
    - `metrics`: `metrics(model, x, mask, y) -> dict` of scalars for one sequence,
        averaged over each split (e.g. `{"accuracy": ...}`: with an `accuracy`,
        early stopping and the best epoch use it). Default: `accuracy` for
        classification, `mse` for regression, nothing for a model without `task`
        (then the loss decides).
    - `config`: a [`TrainConfig`][lrc_toolkit.training.TrainConfig].
    - `out_dir`: where to write checkpoints and metrics (default: nothing written).
    - `resume`: continue the run in `out_dir` (starts afresh if it holds none).
    - `progress`: show a tqdm progress bar.
    - `metadata`: extra JSON-serialisable information stored in the checkpoints
        (e.g. the dataset name and split seed).
    - `mesh`: train data-parallel over the devices of this `jax.sharding.Mesh`
        (e.g. [`data_mesh()`][lrc_toolkit.distributed.data_mesh]): every batch is
        split along the mesh's first axis, the parameters are replicated, and the
        results equal single-device training. `config.batch_size` must be a
        multiple of the number of devices. One process only; for several hosts
        write the loop with [`lrc_toolkit.distributed`](../scaling.md).

    **Returns:**

    A [`FitResult`][lrc_toolkit.training.FitResult].
    """
    # Everything is checked before anything is compiled, trained or written.
    header = _check_arguments(model, config, out_dir, resume, metadata)
    train_a, val_a = check_split(model, train, "train"), check_split(model, val, "val")
    test_a = None if test is None else check_split(model, test, "test")
    objective = make_objective(model, loss, metrics, train_a.times)
    batch_size = _batch_size(config, len(train_a), mesh)
    steps_per_epoch = -(-len(train_a) // batch_size)
    optimiser, rule = make_optimiser(config, steps_per_epoch), config.stopping()
    run = RunDir(out_dir, header, resume)
    model, opt_state, best_model, state = _initial_state(
        model, optimiser, rule, run, resume
    )
    run.start(state["history"])
    if mesh is not None:
        model, opt_state, best_model = replicate((model, opt_state, best_model), mesh)

    def evaluate_on(arrays):
        return evaluate_arrays(model, objective, arrays, config.eval_batch_size, mesh)

    clock, reason = _Clock(config.time_budget), _stop_reason(state, rule, config)
    with ProgressBar(config.epochs, state["epoch"], progress) as bar:
        while reason is None:
            epoch = state["epoch"] + 1
            order = _epoch_order(config.seed, epoch, len(train_a))
            model, opt_state, train_m = train_epoch(
                model, opt_state, optimiser, objective, train_a, batch_size, order, mesh
            )
            _check_finite(train_m, epoch)
            val_m = evaluate_on(val_a)
            state["stopping"], improved = rule.update(state["stopping"], val_m)
            if improved:
                best_model = model
                best_test = None if test_a is None else evaluate_on(test_a)
                state.update(best_epoch=epoch, best_val=val_m, best_test=best_test)
            record = epoch_record(epoch, train_m, val_m, improved, clock.lap())
            state["history"].append(record)
            state["epoch"] = epoch
            reason = _stop_reason(state, rule, config) or clock.spent(record["seconds"])
            state["stop_reason"] = reason
            run.log(record)
            run.save((model, opt_state, best_model), state, improved)
            bar.update(train_m, val_m)
    return FitResult(
        model=best_model,
        last_model=model,
        best_epoch=state["best_epoch"],
        val_metrics=state["best_val"],
        test_metrics=state["best_test"],
        history=state["history"],
        epochs_run=state["epoch"],
        stop_reason=reason,
    )


# ----------------------------------------------------------------------------------
# Evaluation and loading


def evaluate(
    model: eqx.Module,
    data: Any,
    *,
    loss: Callable | None = None,
    metrics: Callable | None = None,
    batch_size: int = 64,
) -> dict[str, float]:
    """Evaluate a model on a data split.

    **Arguments:**

    - `model`: an Equinox model, e.g. an [`LrcSSM`][lrc_toolkit.models.LrcSSM].
    - `data`: any object with `x` (N, T, P), `y` and optionally `mask` (N, T) and
        `times` (N, T), e.g. `dataset.test` from
        [`load_uea`][lrc_toolkit.data.load_uea].
    - `loss`, `metrics`: the hooks of [`fit`][lrc_toolkit.training.fit] (default:
        from the model's `task`).
    - `batch_size`: sequences per compiled batch.

    **Returns:**

    `{"loss", <metrics>..., "num_examples"}`: with the defaults, classification
    `{"loss": mean cross-entropy, "accuracy", "num_examples"}`; regression
    `{"loss", "mse", "num_examples"}` (the MSE over the valid steps).
    """
    if not isinstance(model, eqx.Module):
        raise TypeError(
            f"`model` must be an Equinox module, got {type(model).__name__}."
        )
    check_integer("batch_size", batch_size)
    arrays = check_split(model, data, "data")
    objective = make_objective(model, loss, metrics, arrays.times)
    return evaluate_arrays(model, objective, arrays, batch_size)


def load_checkpoint(
    path: str | os.PathLike,
    like: eqx.Module | None = None,
    *,
    neurons: dict | None = None,
):
    """Load a model from a checkpoint written by [`fit`][lrc_toolkit.training.fit]
    (`best.eqx`, or the best model stored in `last.eqx`/`prev.eqx`), after verifying
    its checksum.

    **Arguments:**

    - `path`: the checkpoint file.
    - `like`: a model of the same structure to load the arrays into. Needed unless
        the file holds an [`LrcSSM`][lrc_toolkit.models.LrcSSM] built from named
        parts, which is rebuilt from the configuration stored in the file.
    - `neurons`: extra named neurons `{name: factory}` that the stored
        configuration may name (see `LrcSSM(neurons=...)`); a file never makes this
        function import code.

    **Returns:**

    `(model, metadata)`: the model and the checkpoint's JSON metadata
    (`model_config`, `train_config`, `metadata`, and the metrics or training state).

    **Raises:** [`CheckpointError`][lrc_toolkit.training.CheckpointError] naming the
    file if it is missing, truncated, corrupted or does not fit `like`.
    """
    meta, payload = read_checkpoint(path)
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{os.fspath(path)!r} was not written by `fit`.")
    if like is None:
        if meta.get("model_config") is None or meta.get("model_class", "LrcSSM") != (
            "LrcSSM"
        ):
            raise CheckpointError(
                f"{os.fspath(path)!r} holds a {meta.get('model_class', 'model')} that "
                "cannot be rebuilt from the file (a custom model or neuron factory): "
                "pass `like=` a model built the same way to load it."
            )
        from ..models import LrcSSM

        like = LrcSSM.from_config(meta["model_config"], key=jr.key(0), neurons=neurons)
    if meta.get("kind") == "train":
        optimiser = make_optimiser(TrainConfig.from_dict(meta["train_config"]))
        _, _, model = deserialise(path, payload, train_state_like(like, optimiser))
    else:
        model = deserialise(path, payload, like)
    return model, meta
