import dataclasses
import math
from typing import Any


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}.")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The settings of [`fit`][lrc_toolkit.training.fit].

    **Fields:**

    - `epochs`: the maximum number of passes over the training set.
    - `batch_size`: sequences per optimiser step (the paper's reference: 4).
    - `learning_rate`: Adam's learning rate.
    - `patience`: stop once the validation score has not improved for this many
        epochs.
    - `seed`: seeds the data order (each epoch's permutation is drawn from
        `fold_in(key(seed), epoch)`, so it needs no saved RNG state).
    - `clip_norm`: gradients are clipped to this global norm before Adam.
    - `eval_batch_size`: sequences per batch when evaluating.
    """

    epochs: int = 100
    batch_size: int = 4
    learning_rate: float = 1e-3
    patience: int = 20
    seed: int = 0
    clip_norm: float = 1.0
    eval_batch_size: int = 64

    def __post_init__(self):
        _check_int("epochs", self.epochs, 1)
        _check_int("batch_size", self.batch_size, 1)
        _check_int("patience", self.patience, 1)
        _check_int("eval_batch_size", self.eval_batch_size, 1)
        _check_int("seed", self.seed, 0)
        for name in ("learning_rate", "clip_norm"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value <= 0
            ):
                raise ValueError(
                    f"`{name}` must be a finite positive number, got {value!r}."
                )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - fields
        if unknown:
            raise ValueError(f"Unknown TrainConfig fields {sorted(unknown)}.")
        return cls(**d)
