"""Per-epoch records and the progress bar."""

from tqdm.auto import tqdm


def epoch_record(epoch, train_metrics, val_metrics, improved, seconds) -> dict:
    """One line of `metrics.jsonl`: `epoch`, `train_<metric>`, `val_<metric>`,
    `improved`, `seconds`."""
    record = {"epoch": epoch}
    record.update({f"train_{k}": v for k, v in train_metrics.items()})
    record.update({f"val_{k}": v for k, v in val_metrics.items()})
    record["improved"] = improved
    record["seconds"] = seconds
    return record


class ProgressBar:
    """A tqdm bar over epochs that shows the training loss and the validation
    accuracy (or loss)."""

    def __init__(self, total: int, initial: int, enabled: bool):
        self.bar = tqdm(
            total=total,
            initial=initial,
            disable=not enabled,
            desc="epochs",
            dynamic_ncols=True,
        )

    def update(self, train_metrics: dict, val_metrics: dict) -> None:
        self.bar.update(1)
        postfix = {"loss": f"{train_metrics['loss']:.4f}"}
        if "accuracy" in val_metrics:
            postfix["val_acc"] = f"{val_metrics['accuracy']:.3f}"
        else:
            postfix["val_loss"] = f"{val_metrics['loss']:.4g}"
        self.bar.set_postfix(postfix)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.bar.close()
