import dataclasses
import math
from typing import Any

from .._checks import check_choice, check_integer, check_positive
from ._stopping import EarlyStopping


SCHEDULES = ("constant", "cosine")
"""The learning-rate schedules of `TrainConfig.schedule`."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The settings of [`fit`][lrc_toolkit.training.fit].

    Two protocols: the defaults below (a fast one: at most `epochs` epochs, stop
    after `patience` epochs without a better validation score, or
    `perfect_patience` epochs after the validation accuracy first reaches 100 %),
    and the LrcSSM paper's, `TrainConfig.paper(...)`.

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
    - `ties_improve`: `False`: an epoch improves on the best one if its validation
        accuracy is higher, or equal with a lower validation loss (regression: a
        lower loss). `True` (the paper's rule): a validation accuracy *at least*
        as high as the best counts as an improvement, so the reported model and test
        metrics are those of the *last* best-validation epoch.
    - `perfect_patience`: once the validation accuracy is 100 %, stop after this
        many further epochs (it cannot rise any more; the remaining epochs only
        trade validation loss). `None`: never stop for this reason.
    - `time_budget`: wall-clock seconds for this call of `fit`: it stops at the
        first epoch boundary where one more epoch (as long as the last one) would
        overrun the budget, with `stop_reason="time_budget"`, after writing its
        checkpoint; `resume=True` continues the run. `None`: no budget.
    - `schedule`: the learning rate over the run. `"constant"`: `learning_rate`
        throughout (the paper's). `"cosine"`: cosine decay from `learning_rate` to 0
        over `epochs` epochs (`optax.cosine_decay_schedule`), so `epochs` should be
        what the run will really train for (a run stopped early, by `patience` or
        `time_budget`, ends at a higher rate).
    - `warmup_epochs`: the learning rate rises linearly from 0 over this many
        epochs first (with either schedule); 0: no warm-up.
    - `weight_decay`: decoupled weight decay (AdamW, `optax.adamw`) on every
        parameter; 0: plain Adam (the paper's).
    """

    epochs: int = 100
    batch_size: int = 4
    learning_rate: float = 1e-3
    patience: int = 20
    seed: int = 0
    clip_norm: float = 1.0
    eval_batch_size: int = 64
    ties_improve: bool = False
    perfect_patience: int | None = 10
    time_budget: int | float | None = None
    schedule: str = "constant"
    warmup_epochs: int = 0
    weight_decay: float = 0.0

    def __post_init__(self):
        check_integer("epochs", self.epochs)
        check_integer("batch_size", self.batch_size)
        check_integer("patience", self.patience)
        check_integer("eval_batch_size", self.eval_batch_size)
        check_integer("seed", self.seed, minimum=0)
        check_positive("learning_rate", self.learning_rate)
        check_positive("clip_norm", self.clip_norm)
        if not isinstance(self.ties_improve, bool):
            raise ValueError(
                f"`ties_improve` must be True or False, got {self.ties_improve!r}."
            )
        if self.perfect_patience is not None:
            check_integer("perfect_patience", self.perfect_patience, minimum=0)
        if self.time_budget is not None:
            check_positive("time_budget", self.time_budget)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_integer("warmup_epochs", self.warmup_epochs, minimum=0)
        if self.warmup_epochs >= self.epochs and self.schedule == "cosine":
            raise ValueError(
                f"`warmup_epochs` ({self.warmup_epochs}) must be fewer than `epochs` "
                f"({self.epochs}) with the cosine schedule: the decay follows the "
                "warm-up within `epochs`."
            )
        if (
            isinstance(self.weight_decay, bool)
            or not isinstance(self.weight_decay, int | float)
            or not math.isfinite(self.weight_decay)
            or self.weight_decay < 0
        ):
            raise ValueError(
                "`weight_decay` must be a finite number >= 0, got "
                f"{self.weight_decay!r}."
            )

    @classmethod
    def paper(cls, learning_rate: float = 1e-3, **changes) -> "TrainConfig":
        """The LrcSSM paper's training protocol (its reference implementation).

        Up to 3000 epochs, the validation set evaluated after every epoch; an epoch
        whose validation accuracy is at least the best so far (ties count) is the
        new best, and training stops once no epoch has reached the best for 1000
        epochs; the reported test metrics are those of the last best-validation
        epoch. Batch size 4, Adam after global-norm clipping at 1.

        **Arguments:**

        - `learning_rate`: the paper's Table 5 value for the data set (e.g.
            `PRESETS[name].train.learning_rate`).
        - `changes`: any other field, e.g. `seed` or `time_budget`.

        **Returns:** a `TrainConfig`.
        """
        settings = dict(
            epochs=3000,
            batch_size=4,
            learning_rate=learning_rate,
            patience=1000,
            clip_norm=1.0,
            ties_improve=True,
            perfect_patience=None,
        )
        return cls(**{**settings, **changes})

    def stopping(self) -> EarlyStopping:
        """The early-stopping rule these settings describe."""
        return EarlyStopping(
            patience=self.patience,
            ties_improve=self.ties_improve,
            perfect_patience=self.perfect_patience,
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """The inverse of `to_dict`; fields missing from `d` (e.g. in a checkpoint
        written by an older version) take their default."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - fields
        if unknown:
            raise ValueError(f"Unknown TrainConfig fields {sorted(unknown)}.")
        return cls(**d)


# ----------------------------------------------------------------------------------
# Presets: model sizes together with the training settings


PROTOCOLS = ("fast", "paper")
"""The training protocols a `Preset` can take (`Preset.with_protocol`): the
fast default of `TrainConfig`, and the LrcSSM paper's (`TrainConfig.paper`)."""


@dataclasses.dataclass(frozen=True)
class Preset:
    """One experiment's settings: the sizes of an
    [`LrcSSM`][lrc_toolkit.models.LrcSSM] and a
    [`TrainConfig`][lrc_toolkit.training.TrainConfig].

    **Fields:**

    - `hidden_size`: the width $H$ of the residual stream.
    - `state_size`: the number of liquid neurons $D$ per block.
    - `num_blocks`: the number of blocks $L$.
    - `train`: the training settings.
    """

    hidden_size: int
    state_size: int
    num_blocks: int
    train: TrainConfig = TrainConfig()

    def __post_init__(self):
        for name in ("hidden_size", "state_size", "num_blocks"):
            check_integer(name, getattr(self, name))
        if not isinstance(self.train, TrainConfig):
            raise TypeError(
                f"`train` must be a TrainConfig, got {type(self.train).__name__}."
            )

    def replace(self, **changes) -> "Preset":
        """A copy with some settings changed, named flat: model sizes or any
        `TrainConfig` field (e.g. `preset.replace(hidden_size=64, epochs=10)`);
        `None` values are ignored (handy for optional command-line options)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        model_fields = {"hidden_size", "state_size", "num_blocks"}
        train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
        unknown = set(changes) - model_fields - train_fields
        if unknown:
            raise ValueError(
                f"Unknown settings {sorted(unknown)}; a Preset has "
                f"{sorted(model_fields)} and the TrainConfig fields "
                f"{sorted(train_fields)}."
            )
        train = dataclasses.replace(
            self.train, **{k: v for k, v in changes.items() if k in train_fields}
        )
        return dataclasses.replace(
            self,
            train=train,
            **{k: v for k, v in changes.items() if k in model_fields},
        )

    def with_protocol(self, protocol: str) -> "Preset":
        """This preset under a training protocol: `"fast"` (unchanged) or
        `"paper"` (`TrainConfig.paper` with this preset's learning rate, seed,
        evaluation batch size and time budget)."""
        if protocol not in PROTOCOLS:
            raise ValueError(
                f"Unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}."
            )
        if protocol == "fast":
            return self
        t = self.train
        train = TrainConfig.paper(
            t.learning_rate,
            seed=t.seed,
            eval_batch_size=t.eval_batch_size,
            time_budget=t.time_budget,
        )
        return dataclasses.replace(self, train=train)

    def model_kwargs(self) -> dict[str, int]:
        """`hidden_size`, `state_size`, `num_blocks`, for `LrcSSM(...)`."""
        return {
            "hidden_size": self.hidden_size,
            "state_size": self.state_size,
            "num_blocks": self.num_blocks,
        }

    def to_dict(self) -> dict[str, Any]:
        """A flat JSON-serialisable dict of every setting."""
        return {**self.model_kwargs(), **self.train.to_dict()}


# The CLI's protocol for data sets without a paper preset: measured on BasicMotions
# (100 % test accuracy over five split seeds in ~20 s each on 2 CPU cores).
# It differs from TrainConfig()'s defaults (lr 1e-3, batch 4, <= 100 epochs,
# patience 20, the paper's batch size and learning rate) to be quick on a CPU.
_FAST = TrainConfig(learning_rate=3e-3, batch_size=8, epochs=60, patience=15)

DEFAULT_PRESET = Preset(hidden_size=32, state_size=32, num_blocks=2, train=_FAST)
"""`lrc-toolkit train`'s settings for a data set without a paper preset."""

ABLATION_PRESET = Preset(
    hidden_size=64,
    state_size=64,
    num_blocks=6,
    train=TrainConfig(learning_rate=1e-4, batch_size=4, epochs=100, patience=20),
)
"""The fixed setup of the paper's ablations (its Tables 2 and 8–11)."""


def _table5(lr, hidden, state, blocks):
    train = dataclasses.replace(_FAST, learning_rate=lr, batch_size=4)
    return Preset(hidden_size=hidden, state_size=state, num_blocks=blocks, train=train)


PRESETS: dict[str, Preset] = {
    "Heartbeat": _table5(1e-3, 64, 64, 4),
    "SelfRegulationSCP1": _table5(1e-3, 64, 16, 2),
    "SelfRegulationSCP2": _table5(1e-3, 128, 64, 2),
    "EthanolConcentration": _table5(1e-4, 128, 16, 2),
    "MotorImagery": _table5(1e-4, 16, 16, 4),
    "EigenWorms": _table5(1e-4, 64, 16, 4),
}
"""The paper's Table 5 (learning rate and sizes per data set, batch 4), with the fast
protocol; `PRESETS[name].with_protocol("paper")` gives the paper's."""
