"""`lrc-toolkit ablate`: the paper's ablation tables (2, 8–11) on one data set."""

import json
import os
import sys


PAPER_SEEDS = (2345, 3456, 4567, 5678, 6789)
DEFAULT_VARIANTS = ("lrc", "stc", "gru", "mgu", "lstm", "dense-lrc")
# The settings of the fixed ablation setup that the command line can change.
SETUP_NAMES = (
    "num_blocks",
    "state_size",
    "hidden_size",
    "learning_rate",
    "batch_size",
    "epochs",
    "patience",
)


def add_ablate_parser(subparsers) -> None:
    from ..ablation import VARIANTS
    from ..training import ABLATION_PRESET
    from ._args import add_setup_arguments, DEFAULT_DATASET, seed

    d = ABLATION_PRESET
    p = subparsers.add_parser(
        "ablate",
        help="train LrcSSM with several neurons (the paper's ablation tables)",
        description=(
            "Train and test LrcSSM with each variant's neuron on each split seed, with "
            f"the paper's fixed ablation setup ({d.num_blocks} blocks, state "
            f"{d.state_size}, hidden {d.hidden_size}, lr {d.train.learning_rate}) unless "
            "overridden; print a table of test accuracy (mean ± std, %) and Newton "
            "iterations, and write OUT/ablation.csv and OUT/ablation.json. "
            f"Variants: {', '.join(VARIANTS)}."
        ),
    )
    p.add_argument("--dataset", default=DEFAULT_DATASET, help="UEA data set name")
    p.add_argument(
        "--variants",
        nargs="+",
        choices=list(VARIANTS),
        default=list(DEFAULT_VARIANTS),
        metavar="VARIANT",
        help=f"default: {' '.join(DEFAULT_VARIANTS)}",
    )
    p.add_argument("--seeds", type=seed, nargs="+", default=list(PAPER_SEEDS))
    p.add_argument("--out", required=True, help="output directory")
    add_setup_arguments(p, d, SETUP_NAMES)
    p.add_argument("--data-dir", help="directory of downloaded UEA data sets")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=run_ablate)


def run_ablate(args) -> int:
    from ..ablation import format_table, run_ablation, write_csv
    from ..training import ABLATION_PRESET, check_output_dir
    from ..training._checkpoint import atomic_write_text
    from ._args import setup_overrides

    setup = ABLATION_PRESET.replace(**setup_overrides(args, SETUP_NAMES))
    out = check_output_dir(args.out)
    print(
        f"ablation on {args.dataset}: variants {' '.join(args.variants)}; seeds "
        f"{' '.join(map(str, args.seeds))}; {setup.to_dict()}",
        file=sys.stderr,
    )
    results = run_ablation(
        args.dataset,
        args.variants,
        args.seeds,
        setup=setup,
        out_dir=out,
        data_dir=args.data_dir,
        progress=not args.no_progress,
        log=lambda line: print(line, file=sys.stderr),
    )
    write_csv(results, os.path.join(out, "ablation.csv"))
    atomic_write_text(os.path.join(out, "ablation.json"), json.dumps(results, indent=2))
    print(format_table(results))
    return 0
