import dataclasses
import functools
import glob
import json
import math
import os
import tempfile
import time
import warnings
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jax.sharding import Mesh
from tqdm.auto import tqdm

from ..distributed import replicate, shard_batch
from ..models import LrcSSM
from ._checkpoint import (
    atomic_write_text,
    CheckpointError,
    deserialise,
    read_checkpoint,
    save_checkpoint,
)
from ._config import TrainConfig


LAST = "last.eqx"
PREVIOUS = "prev.eqx"
BEST = "best.eqx"
METRICS = "metrics.jsonl"
_FORMAT = "lrc_toolkit.training"


@dataclasses.dataclass(frozen=True)
class FitResult:
    """What [`fit`][lrc_toolkit.training.fit] returns.

    **Fields:**

    - `model`: the model at the best validation epoch.
    - `last_model`: the model after the last epoch run.
    - `best_epoch`: the (1-based) epoch of `model`.
    - `val_metrics`, `test_metrics`: the metrics of `model` on the validation and
        test sets (`test_metrics` is `None` without a test set). Classification:
        `{"loss", "accuracy", "num_examples"}`; regression: `{"loss", "mse",
        "num_examples"}` (`loss` is the MSE).
    - `history`: one dict per epoch (`epoch`, `train_loss`, `val_loss`, ...).
    - `epochs_run`: the number of epochs completed.
    - `stop_reason`: `"early_stopping"` or `"max_epochs"`.
    """

    model: LrcSSM
    last_model: LrcSSM
    best_epoch: int
    val_metrics: dict
    test_metrics: dict | None
    history: list
    epochs_run: int
    stop_reason: str


# ----------------------------------------------------------------------------------
# Data checks (before anything is compiled or trained)


@dataclasses.dataclass(frozen=True)
class _Arrays:
    x: np.ndarray
    mask: np.ndarray
    y: np.ndarray


def _as_arrays(model: LrcSSM, data: Any, name: str) -> _Arrays:
    """Check a split (any object with `x`, `mask` (optional) and `y`) against the
    model, and return it as numpy arrays. Raises `ValueError`/`TypeError` naming
    the split and the fix."""
    for attr in ("x", "y"):
        if not hasattr(data, attr):
            raise TypeError(
                f"`{name}` must have attributes `x` (N, T, P), `y` and optionally "
                f"`mask` (N, T) (e.g. a `lrc_toolkit.data` Split); it has no `{attr}`."
            )
    x = np.asarray(data.x)
    if x.ndim != 3 or x.shape[2] != model.input_size:
        raise ValueError(
            f"`{name}.x` must have shape (N, T, {model.input_size}) = (sequences, time "
            f"steps, channels) to match the model's input_size={model.input_size}; "
            f"got {x.shape}."
        )
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"`{name}.x` must be a floating array, got dtype {x.dtype}.")
    N, T = x.shape[:2]
    if N == 0 or T == 0:
        raise ValueError(f"`{name}` is empty (x has shape {x.shape}).")
    mask = getattr(data, "mask", None)
    if mask is None:
        mask = np.ones((N, T), bool)
    mask = np.asarray(mask)
    if mask.shape != (N, T) or mask.dtype != np.bool_:
        raise ValueError(
            f"`{name}.mask` must be a boolean array of shape {(N, T)}, got "
            f"{mask.dtype} of shape {mask.shape}."
        )
    lengths = mask.sum(axis=1)
    if np.any(lengths == 0):
        bad = np.flatnonzero(lengths == 0)[:5].tolist()
        raise ValueError(f"`{name}` has sequences with no valid step (rows {bad}).")
    if np.any(mask != (np.arange(T)[None, :] < lengths[:, None])):
        raise ValueError(
            f"`{name}.mask` must be True on a prefix of each sequence (padding at the "
            "end only): LrcSSM's recurrence is causal, so only trailing padding is "
            "guaranteed not to influence the prediction."
        )
    bad = ~np.isfinite(x) & mask[:, :, None]
    if np.any(bad):
        rows = np.unique(np.nonzero(bad)[0])
        raise ValueError(
            f"`{name}.x` contains {int(bad.sum())} NaN or infinite values on valid "
            f"steps (in {rows.size} sequences, e.g. rows {rows[:5].tolist()}). Impute "
            "or drop them before training."
        )
    y = np.asarray(data.y)
    if model.task == "classification":
        if y.shape != (N,) or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(
                f"`{name}.y` must hold one integer class label per sequence, shape "
                f"({N},); got {y.dtype} of shape {y.shape}."
            )
        if y.min() < 0 or y.max() >= model.num_outputs:
            raise ValueError(
                f"`{name}.y` has labels in [{int(y.min())}, {int(y.max())}], but the "
                f"model has num_outputs={model.num_outputs} classes (labels must lie "
                f"in [0, {model.num_outputs - 1}]). Build the model with "
                "`num_outputs=dataset.num_classes`."
            )
        y = y.astype(np.int32)
    else:
        O = model.num_outputs
        if y.ndim == 1 and O == 1:
            y = y[:, None]
        if y.shape not in ((N, O), (N, T, O)) or not np.issubdtype(
            y.dtype, np.floating
        ):
            raise ValueError(
                f"`{name}.y` must hold float targets of shape ({N}, {O}) (one per "
                f"sequence) or ({N}, {T}, {O}) (one per step) for a regression model "
                f"with num_outputs={O}; got {y.dtype} of shape {y.shape}."
            )
        valid = mask[:, :, None] if y.ndim == 3 else True
        if not np.all(np.isfinite(y) | ~valid):
            raise ValueError(f"`{name}.y` contains NaN or infinite targets.")
    return _Arrays(x, mask, y)


def check_output_dir(out_dir: str | os.PathLike) -> str:
    """Create `out_dir` if needed and check that files can be written in it.

    **Raises:** `ValueError` saying which directory and why.
    """
    out_dir = os.fspath(out_dir)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ValueError(f"The output path {out_dir!r} exists and is not a directory.")
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise ValueError(
            f"Cannot create the output directory {out_dir!r}: {e.strerror or e}. "
            "Choose a writable location."
        ) from None
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=out_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ValueError(
            f"Cannot write to the output directory {out_dir!r}: {e.strerror or e}. "
            "Choose a writable location."
        ) from None
    return out_dir


# ----------------------------------------------------------------------------------
# Losses and compiled steps


def _per_example_loss(model, x, mask, y):
    out = jax.vmap(model)(x, mask)
    if model.task == "classification":
        loss = optax.softmax_cross_entropy_with_integer_labels(out, y)
        correct = jnp.argmax(out, axis=-1).astype(y.dtype) == y
        return loss, correct
    y = y.astype(out.dtype)
    if y.ndim == 2:  # one target per sequence: the mean output over valid steps
        count = jnp.sum(mask, axis=1, keepdims=True).astype(out.dtype)
        pred = jnp.sum(jnp.where(mask[..., None], out, 0), axis=1) / count
        loss = jnp.mean((pred - y) ** 2, axis=1)
    else:  # one target per step: the MSE over the valid steps
        sq = jnp.where(mask[..., None], (out - y) ** 2, 0)
        count = jnp.sum(mask, axis=1).astype(out.dtype) * model.num_outputs
        loss = jnp.sum(sq, axis=(1, 2)) / count
    return loss, jnp.zeros(loss.shape, bool)


@eqx.filter_jit
def _train_step(model, opt_state, optimiser, x, mask, y, weight):
    def batch_loss(model):
        loss, correct = _per_example_loss(model, x, mask, y)
        total = jnp.sum(weight * loss) / jnp.sum(weight)
        return total, (
            jnp.sum(weight * loss),
            jnp.sum((weight > 0) & correct),
        )

    (_, (loss_sum, num_correct)), grads = eqx.filter_value_and_grad(
        batch_loss, has_aux=True
    )(model)
    params = eqx.filter(model, eqx.is_inexact_array)
    # optax mixes Python scalars and int32 counters (Adam's bias correction), which
    # strict dtype promotion rejects: run the optimiser under standard promotion.
    with jax.numpy_dtype_promotion("standard"):
        updates, opt_state = optimiser.update(grads, opt_state, params)
    model = eqx.apply_updates(model, updates)
    return model, opt_state, loss_sum, num_correct


@eqx.filter_jit
def _eval_step(model, x, mask, y, weight):
    loss, correct = _per_example_loss(model, x, mask, y)
    return jnp.sum(weight * loss), jnp.sum((weight > 0) & correct)


def _batches(n: int, batch_size: int, order: np.ndarray):
    """Index batches of a fixed size; the last one is filled up with weight-0
    repeats so that every batch has the same shape (one compilation)."""
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        weight = np.ones(batch_size)
        if idx.size < batch_size:
            weight[idx.size :] = 0
            idx = np.concatenate([idx, np.resize(order, batch_size - idx.size)])
        yield idx, weight


def _metrics(model, loss_sum, num_correct, n):
    loss = float(loss_sum) / n
    if model.task == "classification":
        return {"loss": loss, "accuracy": int(num_correct) / n, "num_examples": n}
    return {"loss": loss, "mse": loss, "num_examples": n}


def _to_devices(mesh, *arrays):
    """A batch as device arrays: split over `mesh` (data parallel), or on the
    default device."""
    if mesh is None:
        return tuple(jnp.asarray(a) for a in arrays)
    return shard_batch(arrays, mesh)


def _round_to_mesh(batch_size: int, mesh) -> int:
    """Round a batch size up to a multiple of the mesh's devices (the extra rows are
    weight-0 fillers, see `_batches`)."""
    return batch_size if mesh is None else -(-batch_size // mesh.size) * mesh.size


def _evaluate_arrays(model, arrays: _Arrays, batch_size: int, mesh=None) -> dict:
    n = arrays.x.shape[0]
    batch_size = _round_to_mesh(min(batch_size, n), mesh)
    loss_sum, num_correct = 0.0, 0
    for idx, weight in _batches(n, batch_size, np.arange(n)):
        l, c = _eval_step(
            model,
            *_to_devices(
                mesh,
                arrays.x[idx],
                arrays.mask[idx],
                arrays.y[idx],
                np.asarray(weight, model.dtype),
            ),
        )
        loss_sum += float(l)
        num_correct += int(c)
    return _metrics(model, loss_sum, num_correct, n)


def evaluate(model: LrcSSM, data: Any, *, batch_size: int = 64) -> dict[str, float]:
    """Evaluate a model on a data split.

    **Arguments:**

    - `model`: an [`LrcSSM`][lrc_toolkit.models.LrcSSM].
    - `data`: any object with `x` (N, T, P), `y` and optionally `mask` (N, T), e.g.
        `dataset.test` from [`load_uea`][lrc_toolkit.data.load_uea].
    - `batch_size`: sequences per compiled batch.

    **Returns:**

    Classification: `{"loss": mean cross-entropy, "accuracy", "num_examples"}`;
    regression: `{"loss", "mse", "num_examples"}` (the MSE over the valid steps).
    """
    if not isinstance(model, LrcSSM):
        raise TypeError(f"`model` must be an LrcSSM, got {type(model).__name__}.")
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, int)
        or batch_size < 1
    ):
        raise ValueError(
            f"`batch_size` must be a positive integer, got {batch_size!r}."
        )
    return _evaluate_arrays(model, _as_arrays(model, data, "data"), batch_size)


def make_optimiser(config: TrainConfig) -> optax.GradientTransformation:
    """Global-norm clipping at `config.clip_norm`, then Adam (the paper's setup)."""
    return _optimiser(config.learning_rate, config.clip_norm)


@functools.lru_cache(maxsize=16)
def _optimiser(learning_rate: float, clip_norm: float) -> optax.GradientTransformation:
    # Cached, so that runs with the same settings (e.g. several seeds) share the
    # compiled train step: the optimiser is a static argument of `_train_step`.
    return optax.chain(optax.clip_by_global_norm(clip_norm), optax.adam(learning_rate))


# ----------------------------------------------------------------------------------
# Checkpoints of a training run


def _better(model, metrics: dict, best: dict | None) -> bool:
    """Classification: higher validation accuracy, ties broken by lower validation
    loss. Regression: lower validation loss."""
    if best is None:
        return True
    if model.task == "classification":
        return (metrics["accuracy"], -metrics["loss"]) > (
            best["accuracy"],
            -best["loss"],
        )
    return metrics["loss"] < best["loss"]


def _train_state_like(model, optimiser):
    params = eqx.filter(model, eqx.is_inexact_array)
    return (model, optimiser.init(params), model)


def _load_run(out_dir, model, optimiser, config, model_config):
    """The newest readable training checkpoint in `out_dir`, or `None`."""
    last, prev = os.path.join(out_dir, LAST), os.path.join(out_dir, PREVIOUS)
    errors = []
    for path in (last, prev):
        if not os.path.exists(path):
            continue
        try:
            metadata, payload = read_checkpoint(path)
            if metadata.get("format") != _FORMAT or metadata.get("kind") != "train":
                raise CheckpointError(f"{path!r} is not a training checkpoint.")
            _check_resume_compatible(path, metadata, config, model_config)
            tree = deserialise(path, payload, _train_state_like(model, optimiser))
        except CheckpointError as e:
            errors.append(str(e))
            if path == last:
                warnings.warn(
                    f"{e} Resuming from the previous checkpoint {prev!r} instead; the "
                    f"unreadable file is kept as {last + '.corrupt'!r}.",
                    stacklevel=3,
                )
                os.replace(last, last + ".corrupt")
            continue
        return metadata, tree
    if errors:
        raise CheckpointError(
            "No readable checkpoint to resume from in "
            f"{out_dir!r}: " + " | ".join(errors)
        )
    return None


def _check_resume_compatible(path, metadata, config, model_config):
    saved = dict(metadata["train_config"])
    now = config.to_dict()
    # More epochs (or another patience) may be asked for when resuming.
    differ = sorted(
        k
        for k in set(saved) | set(now)
        if k not in ("epochs", "patience") and saved.get(k) != now.get(k)
    )
    if differ:
        raise ValueError(
            f"Cannot resume from {path!r}: its training configuration differs in "
            + ", ".join(
                f"{k} (saved {saved.get(k)!r}, now {now.get(k)!r})" for k in differ
            )
            + ". Resume with the same settings, or start a new run in another directory."
        )
    if model_config is not None and metadata.get("model_config") not in (
        None,
        model_config,
    ):
        raise ValueError(
            f"Cannot resume from {path!r}: it was saved from a model with config "
            f"{metadata['model_config']}, but the model given now has {model_config}."
        )


def _stop_reason(state: dict, config: TrainConfig) -> str | None:
    if state["bad_epochs"] >= config.patience:
        return "early_stopping"
    if state["epoch"] >= config.epochs:
        return "max_epochs"
    return None


# ----------------------------------------------------------------------------------
# fit


def fit(
    model: LrcSSM,
    train: Any,
    val: Any,
    test: Any = None,
    *,
    config: TrainConfig = TrainConfig(),
    out_dir: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
    metadata: dict | None = None,
    mesh: Mesh | None = None,
) -> FitResult:
    r"""Train an [`LrcSSM`][lrc_toolkit.models.LrcSSM] with the paper's protocol.

    Each epoch visits the training set in a seeded random order in batches of
    `config.batch_size` (a jit-compiled, `vmap`-batched step: softmax cross-entropy
    for classification, masked MSE for regression; gradients clipped to global
    norm `config.clip_norm`, then Adam). After each epoch the model is evaluated on
    `val`; when the validation score improves (classification: higher accuracy,
    ties broken by lower loss; regression: lower MSE) it is also evaluated on
    `test`, and those are the reported test metrics. Training stops after
    `config.patience` epochs without improvement, or after `config.epochs`.

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

    - `model`: the initial model.
    - `train`, `val`, `test`: splits, any objects with `x` (N, T, P), `y` (labels
        (N,) for classification; for regression, targets (N, O) per sequence,
        compared with the mean output over the valid steps, or (N, T, O) per
        step) and optionally
        `mask` (N, T) (e.g. `dataset.train` from
        [`load_uea`][lrc_toolkit.data.load_uea]). `test` is optional.
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
    # --- validate everything before compiling or training anything --------------
    if not isinstance(model, LrcSSM):
        raise TypeError(
            f"`model` must be an `lrc_toolkit.models.LrcSSM`, got {type(model).__name__}."
        )
    if not isinstance(config, TrainConfig):
        raise TypeError(
            f"`config` must be a `TrainConfig`, got {type(config).__name__}."
        )
    train_a = _as_arrays(model, train, "train")
    val_a = _as_arrays(model, val, "val")
    test_a = None if test is None else _as_arrays(model, test, "test")
    if resume and out_dir is None:
        raise ValueError("`resume=True` needs the `out_dir` of the run to resume.")
    metadata = {} if metadata is None else dict(metadata)
    try:
        json.dumps(metadata)
    except TypeError as e:
        raise TypeError(f"`metadata` must be JSON-serialisable: {e}.") from None
    model_config = model.config
    optimiser = make_optimiser(config)
    if out_dir is not None:
        out_dir = check_output_dir(out_dir)
        for stale in glob.glob(os.path.join(glob.escape(out_dir), "*.eqx.*.tmp")):
            os.unlink(stale)  # temporary files of an interrupted write
        if not resume and any(
            os.path.exists(os.path.join(out_dir, f)) for f in (LAST, PREVIOUS)
        ):
            raise ValueError(
                f"{out_dir!r} already holds a training run ({LAST}). Pass "
                "`resume=True` (`--resume`) to continue it, or choose another output "
                "directory."
            )

    # --- state: fresh or resumed -------------------------------------------------
    params = eqx.filter(model, eqx.is_inexact_array)
    opt_state = optimiser.init(params)
    state = {
        "epoch": 0,
        "best_epoch": 0,
        "best_val": None,
        "best_test": None,
        "bad_epochs": 0,
        "stop_reason": None,
        "history": [],
    }
    best_model = model
    loaded = None
    if resume:
        loaded = _load_run(out_dir, model, optimiser, config, model_config)
    if loaded is not None:
        saved, (model, opt_state, best_model) = loaded
        state = saved["state"]
    if out_dir is not None:
        atomic_write_text(
            os.path.join(out_dir, "config.json"),
            json.dumps(
                {
                    "model_config": model_config,
                    "train_config": config.to_dict(),
                    "metadata": metadata,
                },
                indent=2,
            ),
        )
        # The metrics log is rewritten from the checkpoint's history, so that lines
        # of an interrupted epoch never survive.
        atomic_write_text(
            os.path.join(out_dir, METRICS),
            "".join(json.dumps(h) + "\n" for h in state["history"]),
        )

    def save(model, opt_state, best_model, improved):
        if out_dir is None:
            return
        common = {
            "format": _FORMAT,
            "model_config": model_config,
            "train_config": config.to_dict(),
            "metadata": metadata,
        }
        if improved:
            save_checkpoint(
                os.path.join(out_dir, BEST),
                best_model,
                {
                    **common,
                    "kind": "model",
                    "epoch": state["best_epoch"],
                    "val_metrics": state["best_val"],
                    "test_metrics": state["best_test"],
                },
            )
        save_checkpoint(
            os.path.join(out_dir, LAST),
            (model, opt_state, best_model),
            {**common, "kind": "train", "state": state},
            keep_previous=os.path.join(out_dir, PREVIOUS),
        )

    # --- the loop ------------------------------------------------------------------
    n = train_a.x.shape[0]
    batch_size = min(config.batch_size, n)
    if mesh is not None:
        if jax.process_count() > 1 or config.batch_size % mesh.size:
            raise ValueError(
                f"`fit(mesh=...)` needs one process and a batch size that is a "
                f"multiple of the mesh's {mesh.size} devices; got "
                f"{jax.process_count()} processes and batch_size={config.batch_size}."
            )
        batch_size = _round_to_mesh(batch_size, mesh)
        model, opt_state, best_model = replicate((model, opt_state, best_model), mesh)
    key = jr.key(config.seed)
    bar = tqdm(
        total=config.epochs,
        initial=state["epoch"],
        disable=not progress,
        desc="epochs",
        dynamic_ncols=True,
    )
    try:
        while (reason := _stop_reason(state, config)) is None:
            epoch = state["epoch"] + 1
            start = time.perf_counter()
            order = np.asarray(jr.permutation(jr.fold_in(key, epoch), n))
            loss_sum, num_correct = 0.0, 0
            for idx, weight in _batches(n, batch_size, order):
                model, opt_state, l, c = _train_step(
                    model,
                    opt_state,
                    optimiser,
                    *_to_devices(
                        mesh,
                        train_a.x[idx],
                        train_a.mask[idx],
                        train_a.y[idx],
                        np.asarray(weight, model.dtype),
                    ),
                )
                loss_sum += float(l)
                num_correct += int(c)
            train_metrics = _metrics(model, loss_sum, num_correct, n)
            if not math.isfinite(train_metrics["loss"]):
                raise FloatingPointError(
                    f"The training loss became {train_metrics['loss']} in epoch {epoch}. "
                    "Lower the learning rate or the step size `dt`; the last good "
                    "checkpoint is unchanged."
                )
            val_metrics = _evaluate_arrays(model, val_a, config.eval_batch_size, mesh)
            improved = _better(model, val_metrics, state["best_val"])
            if improved:
                best_model = model
                state["best_epoch"] = epoch
                state["best_val"] = val_metrics
                state["best_test"] = (
                    None
                    if test_a is None
                    else _evaluate_arrays(model, test_a, config.eval_batch_size, mesh)
                )
                state["bad_epochs"] = 0
            else:
                state["bad_epochs"] += 1
            record = {"epoch": epoch}
            record.update({f"train_{k}": v for k, v in train_metrics.items()})
            record.update({f"val_{k}": v for k, v in val_metrics.items()})
            record["improved"] = improved
            record["seconds"] = time.perf_counter() - start
            state["history"].append(record)
            state["epoch"] = epoch
            state["stop_reason"] = _stop_reason(state, config)
            if out_dir is not None:
                with open(os.path.join(out_dir, METRICS), "a") as f:
                    f.write(json.dumps(record) + "\n")
                    f.flush()
                    os.fsync(f.fileno())
            save(model, opt_state, best_model, improved)
            bar.update(1)
            postfix = {"loss": f"{train_metrics['loss']:.4f}"}
            if model.task == "classification":
                postfix["val_acc"] = f"{val_metrics['accuracy']:.3f}"
            else:
                postfix["val_mse"] = f"{val_metrics['loss']:.4g}"
            bar.set_postfix(postfix)
    finally:
        bar.close()
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


def load_checkpoint(
    path: str | os.PathLike, like: LrcSSM | None = None
) -> tuple[LrcSSM, dict]:
    """Load a model from a checkpoint written by [`fit`][lrc_toolkit.training.fit]
    (`best.eqx`, or the best model stored in `last.eqx`/`prev.eqx`), after verifying
    its checksum.

    **Arguments:**

    - `path`: the checkpoint file.
    - `like`: a model of the same structure to load the arrays into. Needed only if
        the model was built with a neuron factory (its `config` is `None`); by
        default the model is rebuilt from the configuration stored in the file.

    **Returns:**

    `(model, metadata)`: the model and the checkpoint's JSON metadata
    (`model_config`, `train_config`, `metadata`, and the metrics or training state).

    **Raises:** [`CheckpointError`][lrc_toolkit.training.CheckpointError] naming the
    file if it is missing, truncated, corrupted or does not fit `like`.
    """
    meta, payload = read_checkpoint(path)
    if meta.get("format") != _FORMAT:
        raise CheckpointError(f"{os.fspath(path)!r} was not written by `fit`.")
    if like is None:
        if meta.get("model_config") is None:
            raise CheckpointError(
                f"{os.fspath(path)!r} holds a model built with a custom neuron factory; "
                "pass `like=` a model built the same way to load it."
            )
        like = LrcSSM.from_config(meta["model_config"], key=jr.key(0))
    if meta.get("kind") == "train":
        optimiser = make_optimiser(TrainConfig.from_dict(meta["train_config"]))
        _, _, model = deserialise(path, payload, _train_state_like(like, optimiser))
    else:
        model = deserialise(path, payload, like)
    return model, meta
