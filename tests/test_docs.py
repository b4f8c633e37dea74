"""The documentation site: every public name has an API entry, and the site builds
with `mkdocs build --strict` without a single warning."""

import importlib
import os
import pathlib
import re
import subprocess
import sys
import types

import pytest

import lrc_toolkit


ROOT = pathlib.Path(__file__).resolve().parent.parent
API_DIR = ROOT / "docs" / "api"
# Public subpackages whose names are documented as `lrc_toolkit.<sub>.<Name>`.
SUBPACKAGES = ("models", "data", "training", "distributed", "baselines")


def _public_names(module: types.ModuleType, prefix: str) -> set[str]:
    names = set()
    for name in dir(module):
        if name.startswith("_"):
            continue
        obj = getattr(module, name)
        if isinstance(obj, types.ModuleType):
            continue
        owner = getattr(obj, "__module__", None)
        # Skip what the module merely imports (typing helpers, third-party classes);
        # keep its own classes/functions and its constants (tuples, dicts, ...).
        if isinstance(owner, str) and not owner.startswith("lrc_toolkit"):
            continue
        names.add(f"{prefix}.{name}")
    return names


def public_api() -> set[str]:
    names = _public_names(lrc_toolkit, "lrc_toolkit")
    for sub in SUBPACKAGES:
        try:
            module = importlib.import_module(f"lrc_toolkit.{sub}")
        except ModuleNotFoundError as e:
            if e.name == f"lrc_toolkit.{sub}":
                continue  # not (yet) part of the package
            raise
        names |= _public_names(module, f"lrc_toolkit.{sub}")
    return names


def documented() -> set[str]:
    pattern = re.compile(r"^:::\s+(lrc_toolkit[\w.]*)\s*$", re.MULTILINE)
    found = set()
    for page in API_DIR.glob("*.md"):
        found |= set(pattern.findall(page.read_text(encoding="utf-8")))
    return found


def test_public_api_is_not_trivially_empty():
    names = public_api()
    assert "lrc_toolkit.solve_parallel" in names
    assert "lrc_toolkit.LRC" in names
    assert "lrc_toolkit.__version__" not in names
    assert not any(n.split(".")[-1] in {"jax", "jnp", "eqx"} for n in names)


def test_every_public_name_has_an_api_entry():
    missing = sorted(public_api() - documented())
    assert not missing, (
        "These public names have no `::: name` block in docs/api/*.md; add them to the "
        f"page of their group: {missing}"
    )


def test_api_entries_point_at_real_objects():
    for target in sorted(documented()):
        module_name, _, attr = target.rpartition(".")
        module = importlib.import_module(module_name)
        assert hasattr(module, attr), (
            f"docs/api refers to {target}, which does not exist"
        )


def test_every_page_and_notebook_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = [
        p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")
    ]
    notebooks = [f"examples/{p.name}" for p in (ROOT / "examples").glob("*.ipynb")]
    missing = [p for p in pages + notebooks if p not in nav]
    assert not missing, f"Add these pages to the `nav` of mkdocs.yml: {missing}"


@pytest.mark.slow
def test_mkdocs_build_strict(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--config-file",
            str(ROOT / "mkdocs.yml"),
            "--site-dir",
            str(tmp_path / "site"),
        ],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    log = result.stdout + result.stderr
    # Strict mode turns warnings into a failed build; `--quiet` would hide them (and
    # a build with `--quiet` passed with a broken cross-reference), so none may
    # appear in the log either.
    warnings = [line for line in log.splitlines() if "WARNING" in line]
    assert result.returncode == 0 and not warnings, "\n".join(warnings) or log
    assert (tmp_path / "site" / "index.html").exists()
    assert (tmp_path / "site" / "examples" / "quickstart" / "index.html").exists()
    # MathJax is served with the site, so the maths renders offline (the browser test,
    # tests/test_docs_browser.py, checks that it typesets every page).
    mathjax = tmp_path / "site" / "javascripts" / "vendor" / "mathjax"
    assert (mathjax / "tex-mml-chtml.js").is_file()
    assert (mathjax / "output" / "chtml" / "fonts" / "woff-v2").is_dir()
    for page in (tmp_path / "site").rglob("*.html"):
        remote = re.findall(
            r'<script[^>]*\ssrc="(?:https?:)?//[^"]*"', page.read_text()
        )
        assert not remote, f"{page}: scripts from outside the site: {remote}"
