"""A training run's directory: config.json, metrics.jsonl, and the checkpoints
last.eqx (rotated to prev.eqx) and best.eqx."""

import glob
import json
import os
import tempfile
import warnings

import equinox as eqx

from ._checkpoint import (
    atomic_write_text,
    CheckpointError,
    deserialise,
    read_checkpoint,
    save_checkpoint,
)


LAST = "last.eqx"
PREVIOUS = "prev.eqx"
BEST = "best.eqx"
METRICS = "metrics.jsonl"
FORMAT = "lrc_toolkit.training"
# Settings that may change when a run is resumed: they decide only when to stop.
RESUMABLE_CHANGES = ("epochs", "patience", "perfect_patience", "time_budget")


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


def train_state_like(model, optimiser):
    """The structure stored in `last.eqx`: (model, optimiser state, best model)."""
    return (model, optimiser.init(eqx.filter(model, eqx.is_inexact_array)), model)


class RunDir:
    """Reads and writes one run's files; with `path=None` every write is a no-op.

    `header` (format, model and training configuration, user metadata) goes into
    every checkpoint and into `config.json`.
    """

    def __init__(self, path: str | os.PathLike | None, header: dict, resume: bool):
        self.path = None if path is None else check_output_dir(path)
        self.header = {"format": FORMAT, **header}
        if self.path is None:
            return
        for stale in glob.glob(os.path.join(glob.escape(self.path), "*.eqx.*.tmp")):
            os.unlink(stale)  # temporary files of an interrupted write
        if not resume and any(os.path.exists(self._file(f)) for f in (LAST, PREVIOUS)):
            raise ValueError(
                f"{self.path!r} already holds a training run ({LAST}). Pass "
                "`resume=True` (`--resume`) to continue it, or choose another output "
                "directory."
            )

    def _file(self, name: str) -> str:
        return os.path.join(self.path, name)

    # -- reading --------------------------------------------------------------------

    def load(self, like):
        """The newest readable training checkpoint as `(state, tree)` with `tree`
        shaped like `like`, or `None` if there is none. An unreadable `last.eqx` is
        set aside as `last.eqx.corrupt` (with a warning) and `prev.eqx` is used."""
        last, prev = self._file(LAST), self._file(PREVIOUS)
        errors = []
        for path in (last, prev):
            if not os.path.exists(path):
                continue
            try:
                metadata, payload = read_checkpoint(path)
                if metadata.get("format") != FORMAT or metadata.get("kind") != "train":
                    raise CheckpointError(f"{path!r} is not a training checkpoint.")
                self._check_compatible(path, metadata)
                tree = deserialise(path, payload, like)
            except CheckpointError as e:
                errors.append(str(e))
                if path == last:
                    warnings.warn(
                        f"{e} Resuming from the previous checkpoint {prev!r} instead; "
                        f"the unreadable file is kept as {last + '.corrupt'!r}.",
                        stacklevel=3,
                    )
                    os.replace(last, last + ".corrupt")
                continue
            return metadata["state"], tree
        if errors:
            raise CheckpointError(
                f"No readable checkpoint to resume from in {self.path!r}: "
                + " | ".join(errors)
            )
        return None

    def _check_compatible(self, path: str, metadata: dict) -> None:
        from ._config import TrainConfig

        # Through TrainConfig, so that fields an older version did not write take
        # their defaults.
        saved = TrainConfig.from_dict(metadata["train_config"]).to_dict()
        now = self.header["train_config"]
        differ = sorted(
            k for k in now if k not in RESUMABLE_CHANGES and saved.get(k) != now[k]
        )
        if differ:
            raise ValueError(
                f"Cannot resume from {path!r}: its training configuration differs in "
                + ", ".join(
                    f"{k} (saved {saved.get(k)!r}, now {now[k]!r})" for k in differ
                )
                + ". Resume with the same settings, or start a new run in another "
                "directory."
            )
        saved_model = metadata.get("model_config")
        now_model = self.header.get("model_config")
        if None not in (saved_model, now_model) and saved_model != now_model:
            raise ValueError(
                f"Cannot resume from {path!r}: it was saved from a model with config "
                f"{saved_model}, but the model given now has {now_model}."
            )

    # -- writing --------------------------------------------------------------------

    def start(self, history: list) -> None:
        """Write `config.json`, and rewrite `metrics.jsonl` from the checkpoint's
        history, so that lines of an interrupted epoch never survive."""
        if self.path is None:
            return
        info = {k: v for k, v in self.header.items() if k != "format"}
        atomic_write_text(self._file("config.json"), json.dumps(info, indent=2))
        atomic_write_text(
            self._file(METRICS), "".join(json.dumps(h) + "\n" for h in history)
        )

    def log(self, record: dict) -> None:
        """Append one epoch's line to `metrics.jsonl` (flushed to disk)."""
        if self.path is None:
            return
        with open(self._file(METRICS), "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def save(self, train_tree, state: dict, improved: bool) -> None:
        """Write `best.eqx` (if `improved`), then `last.eqx` (the old one becomes
        `prev.eqx`). `train_tree` is (model, optimiser state, best model)."""
        if self.path is None:
            return
        if improved:
            save_checkpoint(
                self._file(BEST),
                train_tree[2],
                {
                    **self.header,
                    "kind": "model",
                    "epoch": state["best_epoch"],
                    "val_metrics": state["best_val"],
                    "test_metrics": state["best_test"],
                },
            )
        save_checkpoint(
            self._file(LAST),
            train_tree,
            {**self.header, "kind": "train", "state": state},
            keep_previous=self._file(PREVIOUS),
        )
