import difflib
import functools
import hashlib
import os
import pathlib
from collections.abc import Sequence

import numpy as np

from .._extras import require
from ._dataset import UEADataset
from ._protocol import DEFAULT_FRACTIONS, DEFAULT_SEED, load_arrays
from ._times import DEFAULT_DROP_SEED


PAPER_SEEDS = (2345, 3456, 4567, 5678, 6789)
"""The five split seeds of the paper (and of Log-NCDE / LinOSS)."""

PAPER_DATASETS = (
    "Heartbeat",
    "SelfRegulationSCP1",
    "SelfRegulationSCP2",
    "EthanolConcentration",
    "MotorImagery",
    "EigenWorms",
)
"""The six UEA data sets of the paper's Table 1 (download them: see `load_uea`)."""

BUNDLED_DATASETS = ("BasicMotions", "JapaneseVowels")
"""UEA multivariate data sets that ship inside aeon and load without any download."""

UEA_DOWNLOAD_PAGE = "https://www.timeseriesclassification.com/dataset.php"
DATA_DIR_ENV = "LRC_TOOLKIT_DATA"


def default_data_dir() -> pathlib.Path:
    """The directory [`load_uea`][lrc_toolkit.data.load_uea] reads downloaded data
    sets from when no `data_dir` is given: `$LRC_TOOLKIT_DATA` if set, else
    `~/.lrc_toolkit/data`.

    **Returns:**

    The directory, as a `pathlib.Path` (it may not exist).
    """
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return pathlib.Path(env).expanduser()
    return pathlib.Path("~/.lrc_toolkit/data").expanduser()


def load_uea(
    name: str,
    *,
    seed: int | np.integer = DEFAULT_SEED,
    data_dir: str | os.PathLike | None = None,
    time_channel: bool = False,
    normalise: bool = True,
    fractions: Sequence[float | int] = DEFAULT_FRACTIONS,
    drop_rate: float | int = 0.0,
    drop_seed: int | np.integer = DEFAULT_DROP_SEED,
) -> UEADataset:
    """Load a UEA classification data set and split it following the paper's
    protocol.

    The archive's train and test files are merged, duplicate cases dropped, the rest
    permuted with `seed` and split 70 / 15 / 15 into train / validation / test;
    each channel is normalised with statistics of the training split only. The exact
    procedure is that of [`load_arrays`][lrc_toolkit.data.load_arrays].

    **Where the files come from.** Nothing is ever downloaded. The files are read,
    through `aeon.datasets.load_classification`, from

    1. `<data_dir>/<name>/<name>_TRAIN.ts` and `<data_dir>/<name>/<name>_TEST.ts`
        if both exist, where `data_dir` defaults to
        [`default_data_dir()`][lrc_toolkit.data.default_data_dir]
        (`$LRC_TOOLKIT_DATA` or `~/.lrc_toolkit/data`); any data set in aeon's `.ts`
        format can be put there, including your own;
    2. otherwise, from the data sets bundled with aeon
        ([`BUNDLED_DATASETS`][lrc_toolkit.data.BUNDLED_DATASETS]: BasicMotions,
        JapaneseVowels).

    For the paper's data sets ([`PAPER_DATASETS`][lrc_toolkit.data.PAPER_DATASETS]),
    download the "Multivariate_ts" archive (or the single data set's zip) from
    <https://www.timeseriesclassification.com/dataset.php> and unzip it so that the
    layout above holds (the archive unzips to `Multivariate_ts/<name>/...`: pass
    `data_dir=".../Multivariate_ts"`).

    The series are read as published, with variable lengths kept (JapaneseVowels:
    lengths 7 to 29, padded at the end with masks); class labels are the names
    declared in the file header (lower case, as aeon reads them), in the header's
    order.

    **Irregular sampling.** `drop_rate=0.3` (or 0.5, 0.7) drops that fraction of
    each series' samples at random, the protocol of the neural-CDE papers (Kidger
    et al. 2020): the kept samples keep their original positions $0, \\dots,
    T_i - 1$ as time stamps (aeon does not read a file's own time stamps), are
    packed to the front of each series, and the splits carry them as `Split.times`.
    The drop is made on the whole collection before the split, with a generator
    independent of `seed`; see step 3 of `load_arrays` for the exact procedure.

    **Arguments:**

    - `name`: the data set's name as in the archive, e.g. `"Heartbeat"`.
    - `seed`: the permutation seed; the paper uses each of
        [`PAPER_SEEDS`][lrc_toolkit.data.PAPER_SEEDS].
    - `data_dir`: the directory of downloaded data sets (see above).
    - `time_channel`: prepend a time channel $k / (T - 1)$ (see `load_arrays`); the
        paper's experiments use none.
    - `normalise`: normalise each channel with the training split's mean and
        standard deviation.
    - `fractions`: train / validation / test fractions, summing to 1.
    - `drop_rate`: the fraction of each series' samples to drop at random, in
        `[0, 1)`; 0 keeps every sample (and `Split.times` is `None`).
    - `drop_seed`: the seed of the drop (default 56789, the neural-CDE code's).

    **Returns:**

    A [`UEADataset`][lrc_toolkit.data.UEADataset].

    **Raises:**

    - `ValueError` for an unknown name (with the known names), NaN values in the
        data (with the number of cases affected), labels outside the declared
        classes, a split left empty, fractions that do not sum to 1, or a
        `drop_rate` outside `[0, 1)`.
    - `FileNotFoundError` for an archive data set that is not in `data_dir`, with
        where to download it and where to put it.
    """
    if not isinstance(name, str):
        raise TypeError(f"`name` must be a string, got {type(name).__name__}.")
    if not name or name.startswith(".") or any(c in name for c in "/\\:"):
        raise ValueError(
            f"`name` must be a data set's name such as 'Heartbeat', got {name!r}; "
            "to read files from another directory, pass `data_dir=`."
        )
    root = default_data_dir() if data_dir is None else pathlib.Path(data_dir)
    root = root.expanduser().resolve()
    series, labels, classes = _read(name, root)
    return load_arrays(
        series,
        labels,
        seed=seed,
        name=name,
        classes=classes,
        time_channel=time_channel,
        normalise=normalise,
        fractions=fractions,
        drop_rate=drop_rate,
        drop_seed=drop_seed,
    )


# -------------------------------------------------------------------------- reading


def _bundled_root() -> pathlib.Path:
    datasets = require("aeon.datasets", "Loading a UEA data set")
    return pathlib.Path(datasets.__file__).parent / "data"


def _files(root: pathlib.Path, name: str) -> tuple[pathlib.Path, pathlib.Path]:
    return root / name / f"{name}_TRAIN.ts", root / name / f"{name}_TEST.ts"


def _archive_names() -> set[str]:
    tsc = require("aeon.datasets.tsc_datasets", "Loading a UEA data set")
    return set(tsc.tsc_zenodo) | set(tsc.multivariate) | set(PAPER_DATASETS)


def _local_names(root: pathlib.Path) -> list[str]:
    if not root.is_dir():
        return []
    return sorted(
        p.name
        for p in root.iterdir()
        if p.is_dir() and all(f.is_file() for f in _files(root, p.name))
    )


def _read(name: str, root: pathlib.Path):
    train_file, test_file = _files(root, name)
    if train_file.is_file() and test_file.is_file():
        extract_path = str(root)
    elif all(f.is_file() for f in _files(_bundled_root(), name)):
        # aeon reads its bundled copy when `extract_path` is None (and only
        # downloads when the data set is neither bundled nor cached; we checked).
        extract_path = None
        train_file, test_file = _files(_bundled_root(), name)
    else:
        raise _missing_error(name, root)
    digest = _content_digest(train_file, test_file)
    series, labels, classes = _read_cached(name, extract_path, digest)
    return list(series), labels, classes


def _content_digest(*files: pathlib.Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    for file in files:
        with open(file, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
        h.update(b"\0")
    return h.hexdigest()


@functools.lru_cache(maxsize=4)
def _read_cached(name: str, extract_path: str | None, digest: str):
    """Parse both files once per process (aeon's `.ts` parser is slow for long
    series; hashing the files is not). `digest`, a hash of the files' contents,
    invalidates the entry when a file changes."""
    del digest
    load_classification = require(
        "aeon.datasets", "Loading a UEA data set"
    ).load_classification

    parts = []
    for split in ("train", "test"):
        try:
            x, y, meta = load_classification(
                name, split=split, extract_path=extract_path, return_metadata=True
            )
        except (OSError, ValueError) as e:
            where = extract_path or "aeon's bundled data"
            raise ValueError(
                f"{name}: could not read the {split} file in {where}: {e}"
            ) from e
        # aeon: (N, C, T) array for equal lengths, else a list of (C, T_i) arrays.
        series = tuple(
            np.ascontiguousarray(np.asarray(s, dtype=np.float64).T) for s in x
        )
        for s in series:
            s.flags.writeable = False
        parts.append((series, np.asarray(y).astype(str), tuple(meta["class_values"])))
    (train_x, train_y, train_classes), (test_x, test_y, test_classes) = parts
    if train_classes != test_classes:
        raise ValueError(
            f"{name}: the train file declares the classes {list(train_classes)} but "
            f"the test file declares {list(test_classes)}; the labels are not "
            "consistent. Check the files."
        )
    labels = np.concatenate([train_y, test_y])
    labels.flags.writeable = False
    classes = train_classes if train_classes else None
    return train_x + test_x, labels, classes


def _missing_error(name: str, root: pathlib.Path) -> Exception:
    known = _archive_names()
    layout = (
        f"    {root / name / (name + '_TRAIN.ts')}\n"
        f"    {root / name / (name + '_TEST.ts')}"
    )
    if name in known:
        present = [str(f) for f in _files(root, name) if f.is_file()]
        found = f" (found only {present[0]})" if present else ""
        return FileNotFoundError(
            f"The UEA data set '{name}' is not in the data directory {root}{found}. "
            "It is not downloaded automatically. Download it from "
            f"{UEA_DOWNLOAD_PAGE} (the 'Multivariate_ts' archive zip, or the data "
            "set's own zip), unzip it, and put the files at\n"
            f"{layout}\n"
            f"or pass `data_dir=` (or set ${DATA_DIR_ENV}) to the directory that "
            f"holds the '{name}' folder (the archive unzips to "
            "'Multivariate_ts/<Name>/'). Bundled data sets that need no download: "
            f"{', '.join(BUNDLED_DATASETS)}."
        )
    local = _local_names(root)
    lower = {k.lower(): k for k in known | set(local)}
    close = difflib.get_close_matches(name.lower(), list(lower), n=3, cutoff=0.75)
    hint = f" Did you mean {', '.join(repr(lower[c]) for c in close)}?" if close else ""
    tsc = require("aeon.datasets.tsc_datasets", "Loading a UEA data set")
    others = sorted(set(tsc.multivariate) - set(BUNDLED_DATASETS) - set(PAPER_DATASETS))
    local_line = f" Found in {root}: {', '.join(local)}." if local else ""
    return ValueError(
        f"Unknown data set '{name}'.{hint} Known names: bundled with aeon (no "
        f"download): {', '.join(BUNDLED_DATASETS)}; the paper's: "
        f"{', '.join(PAPER_DATASETS)}; the other UEA multivariate data sets: "
        f"{', '.join(others)}; and the UCR univariate ones (see "
        f"`aeon.datasets.tsc_datasets`).{local_line} For your own data, put "
        f"'<Name>_TRAIN.ts' and '<Name>_TEST.ts' (aeon's .ts format) in "
        f"{root / '<Name>'}, or use `lrc_toolkit.data.load_arrays`."
    )
