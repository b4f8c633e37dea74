"""Source-level guarantees: no pickle anywhere, numpy loads refuse pickled objects."""

import pathlib
import re

import pytest


ROOT = pathlib.Path(__file__).resolve().parents[1]
SOURCES = sorted(
    p
    for folder in ("lrc_toolkit", "benchmarks")
    for p in (ROOT / folder).rglob("*.py")
    if "__pycache__" not in p.parts
)


def test_sources_found():
    assert any(p.name == "newton.py" for p in SOURCES)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_pickle(path):
    text = path.read_text()
    assert not re.search(
        r"^\s*(import|from)\s+(c?pickle|dill|cloudpickle)\b", text, re.M
    )
    assert "allow_pickle=True" not in text
    assert "torch.load" not in text
    for call in re.finditer(r"\bnp\.load\(", text):
        # Every numpy load must say allow_pickle=False within its call.
        window = text[call.start() : call.start() + 300]
        closing = window.find(")\n")
        assert "allow_pickle=False" in window[: closing if closing > 0 else 300], (
            f"{path}: np.load without allow_pickle=False"
        )


def test_failure_modes_page_names_real_tests():
    """Every test the "Failure modes" page cites exists, in the file it names."""
    page = (ROOT / "docs" / "failure_modes.md").read_text()
    cited = 0
    for row in page.splitlines():
        files = re.findall(r"`(test_\w+)\.py::", row)
        if not files:
            continue
        # Names after "file.py::" and bare `test_*` names that follow belong to the
        # last file named before them in the cell.
        for cell in row.split("|"):
            current = None
            for token in re.findall(r"`(test_\w+)(?:\.py::(test_\w+))?`", cell):
                if token[1]:
                    current, name = token[0], token[1]
                else:
                    name = token[0]
                assert current is not None, f"no file for {name} in: {cell}"
                source = (ROOT / "tests" / f"{current}.py").read_text()
                assert re.search(rf"^def {name}\(", source, re.M), (
                    f"{current}.py::{name}"
                )
                cited += 1
    assert cited >= 30


def test_ruff_check_and_format():
    """The project's lint and format rules hold (ruff is a dev dependency): the CI
    run fails on a lint error or an unformatted Python file or notebook."""
    import shutil
    import subprocess

    ruff = shutil.which("ruff")
    assert ruff is not None, "ruff is a dev dependency: pip install -e '.[dev]'"
    check = subprocess.run(
        [ruff, "check", "."], cwd=ROOT, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    python = ["lrc_toolkit", "tests", "benchmarks", "examples"]
    fmt = subprocess.run(
        [ruff, "format", "--check", *python], cwd=ROOT, capture_output=True, text=True
    )
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_sources_compile_without_warnings():
    """Every source compiles with warnings as errors: an invalid escape such as
    `"$\\Delta t$"` in a non-raw docstring is a SyntaxWarning today (and garbles
    the rendered docs) and a SyntaxError in a future Python."""
    import warnings

    failures = []
    for path in SOURCES:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            try:
                compile(path.read_text(), str(path), "exec")
            except SyntaxError as e:
                failures.append(f"{path.relative_to(ROOT)}: {e}")
    assert not failures, failures
