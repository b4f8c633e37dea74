"""`lrc-toolkit evaluate`: a checkpoint of `train` on a split of its data."""

import json
import os

from ._args import (
    add_data_arguments,
    data_source,
    import_factory,
    is_factory_path,
    load_data,
    positive_int,
    seed,
    source_name,
)


def add_evaluate_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="evaluate a checkpoint on a data set split",
        description=(
            "Evaluate a checkpoint (best.eqx or last.eqx written by `train`) on the "
            "data it was trained on (the data set or file, drop rate and split seed "
            "recorded in the checkpoint), or on other data given by the options."
        ),
    )
    p.add_argument("checkpoint")
    add_data_arguments(p, default_dataset=None)
    p.add_argument("--seed", type=seed, help="split seed (default: the checkpoint's)")
    p.add_argument(
        "--split",
        choices=("train", "val", "test"),
        default="test",
        help="(default: %(default)s)",
    )
    p.add_argument(
        "--neuron",
        help="for a run trained with your own neuron 'package.module:factory': name "
        "it again to allow importing it (a checkpoint alone never imports code)",
    )
    p.add_argument(
        "--batch-size",
        type=positive_int,
        default=64,
        help="sequences per evaluation batch (default: %(default)s)",
    )
    p.set_defaults(func=run_evaluate)


def run_evaluate(args) -> int:
    from ..training import evaluate, load_checkpoint, read_checkpoint

    meta, _ = read_checkpoint(args.checkpoint)
    saved = meta.get("metadata", {})
    recorded = (meta.get("model_config") or {}).get("neuron") or saved.get("neuron")
    neurons = {}
    if recorded and is_factory_path(recorded):
        if args.neuron != recorded:
            raise ValueError(
                f"This run was trained with your own neuron {recorded!r}. Loading it "
                "imports and runs that module's code, which a run folder alone never "
                f"triggers: pass --neuron {recorded} to allow it."
            )
        neurons = {recorded: import_factory(recorded)}
    model, meta = load_checkpoint(args.checkpoint, neurons=neurons)
    if args.dataset is None and args.data is None:
        source = {
            key: saved.get(key) for key in ("dataset", "data", "drop_rate", "drop_seed")
        }
        if args.drop_rate is not None:
            source["drop_rate"] = args.drop_rate
        if not source["dataset"] and not source["data"]:
            raise ValueError(
                "The checkpoint does not name its data: pass --dataset or --data."
            )
    else:
        source = data_source(args, default_dataset=None)
    split_seed = args.seed if args.seed is not None else saved.get("split_seed", 2345)
    ds = load_data(source, split_seed, args.data_dir)
    name = source_name(source)
    trained_on = saved.get("dataset") or os.path.basename(
        saved.get("data") or "unknown"
    )
    if ds.input_size != model.input_size:
        raise ValueError(
            f"{name!r} has {ds.input_size} channels but the checkpoint's model takes "
            f"{model.input_size}: it was trained on other data ({trained_on!r})."
        )
    if ds.num_classes != model.num_outputs:
        raise ValueError(
            f"{name!r} has {ds.num_classes} classes but the checkpoint's model "
            f"predicts {model.num_outputs}: it was trained on other data "
            f"({trained_on!r})."
        )
    if "classes" in saved and list(saved["classes"]) != list(ds.classes):
        raise ValueError(
            f"The class names of {name!r} ({list(ds.classes)}) differ from those "
            f"the checkpoint was trained with ({saved['classes']})."
        )
    split = getattr(ds, args.split)
    if saved.get("dt_blind"):
        import dataclasses

        split = dataclasses.replace(split, times=None)
    metrics = evaluate(model, split, batch_size=args.batch_size)
    report = {
        "checkpoint": os.fspath(args.checkpoint),
        "dataset": name,
        "split": args.split,
        "split_seed": split_seed,
        **metrics,
    }
    print(json.dumps(report, indent=2))
    return 0
