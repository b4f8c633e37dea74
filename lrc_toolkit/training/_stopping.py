import dataclasses


def _score(metrics: dict) -> tuple[float, ...]:
    """Higher is better: (accuracy, -loss) when there is an accuracy, else (-loss,)."""
    if "accuracy" in metrics:
        return (float(metrics["accuracy"]), -float(metrics["loss"]))
    return (-float(metrics["loss"]),)


@dataclasses.dataclass(frozen=True)
class EarlyStopping:
    """When to stop training, and which epoch is the best, from the validation
    metrics of each epoch.

    The rule is pure: its state is a small JSON-serialisable dict that lives in the
    training checkpoint, so a resumed run stops exactly where an uninterrupted one
    does.

    ```python
    rule = EarlyStopping(patience=3)
    state = rule.init()
    for metrics in [{"accuracy": 0.5, "loss": 0.7}, ...]:
        state, improved = rule.update(state, metrics)
        if rule.stop_reason(state) is not None:
            break
    ```

    **Fields:**

    - `patience`: stop once this many epochs in a row have not improved.
    - `ties_improve`: `False`: an epoch improves if its score is higher (the
        accuracy, ties broken by a lower loss; without an accuracy, a lower loss).
        `True` (the LrcSSM paper's rule): an accuracy at least as high as the best
        improves (without an accuracy: a loss at most as low).
    - `perfect_patience`: once the validation accuracy has been 100 %, stop this
        many epochs later (`None`: never).
    """

    patience: int = 20
    ties_improve: bool = False
    perfect_patience: int | None = 10

    def init(self) -> dict:
        """The state before the first epoch."""
        return {"best": None, "bad_epochs": 0, "since_perfect": None}

    def update(self, state: dict, val_metrics: dict) -> tuple[dict, bool]:
        """Account for one epoch.

        **Arguments:**

        - `state`: the rule's state (from `init` or the previous `update`).
        - `val_metrics`: the epoch's validation metrics: `loss`, and `accuracy` for
            classification.

        **Returns:**

        `(state, improved)`: the new state, and whether this epoch is the new best.
        """
        score = _score(val_metrics)
        best = None if state["best"] is None else tuple(state["best"])
        if best is None:
            improved = True
        elif self.ties_improve:
            improved = score[0] >= best[0]
        else:
            improved = score > best
        since_perfect = state["since_perfect"]
        if since_perfect is not None:
            since_perfect += 1
        elif val_metrics.get("accuracy") == 1:
            since_perfect = 0
        new = {
            "best": list(score) if improved else list(best),
            "bad_epochs": 0 if improved else state["bad_epochs"] + 1,
            "since_perfect": since_perfect,
        }
        return new, improved

    def stop_reason(self, state: dict) -> str | None:
        """`"early_stopping"` (patience spent), `"perfect_validation"` or `None`."""
        if state["bad_epochs"] >= self.patience:
            return "early_stopping"
        since = state["since_perfect"]
        if self.perfect_patience is not None and since is not None:
            if since >= self.perfect_patience:
                return "perfect_validation"
        return None
