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
    assert any(p.name == "parallel.py" for p in SOURCES)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_pickle(path):
    text = path.read_text()
    assert not re.search(r"^\s*(import|from)\s+(c?pickle|dill|cloudpickle)\b", text, re.M)
    assert "allow_pickle=True" not in text
    assert "torch.load" not in text
    for call in re.finditer(r"\bnp\.load\(", text):
        # Every numpy load must say allow_pickle=False within its call.
        window = text[call.start() : call.start() + 300]
        closing = window.find(")\n")
        assert "allow_pickle=False" in window[: closing if closing > 0 else 300], (
            f"{path}: np.load without allow_pickle=False"
        )
