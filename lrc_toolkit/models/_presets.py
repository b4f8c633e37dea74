import dataclasses


@dataclasses.dataclass(frozen=True)
class Preset:
    """Hyperparameters of one dataset (the LrcSSM paper's Table 5).

    **Fields:**

    - `learning_rate`: Adam's learning rate.
    - `hidden_size`: the width $H$ of the residual stream.
    - `state_size`: the number of liquid neurons $D$ per block.
    - `num_blocks`: the number of blocks $L$.
    - `batch_size`: the number of sequences per step (the reference uses 4).
    """

    learning_rate: float
    hidden_size: int
    state_size: int
    num_blocks: int
    batch_size: int = 4


PRESETS: dict[str, Preset] = {
    "Heartbeat": Preset(1e-3, 64, 64, 4),
    "SelfRegulationSCP1": Preset(1e-3, 64, 16, 2),
    "SelfRegulationSCP2": Preset(1e-3, 128, 64, 2),
    "EthanolConcentration": Preset(1e-4, 128, 16, 2),
    "MotorImagery": Preset(1e-4, 16, 16, 4),
    "EigenWorms": Preset(1e-4, 64, 16, 4),
}
