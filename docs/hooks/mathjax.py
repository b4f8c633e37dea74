"""MkDocs hook: serve MathJax 3 with the site, so that its maths renders offline.

MathJax comes from the `django-static-mathjax` package of the `docs` extra: a copy of
MathJax's own npm distribution (Apache-2.0, no dependencies, Django not needed). The
hook adds to the site, under `javascripts/vendor/mathjax/`, the combined component
`tex-mml-chtml.js` and what it loads on demand: TeX extensions (`\\boldsymbol`,
`\\cancel`, ...), the CHTML fonts, and the accessibility and menu components.
"""

import importlib.util
import pathlib

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files


TARGET = "javascripts/vendor/mathjax"
# Paths inside MathJax's `es5/` folder; `[mathjax]/...` in MathJax's loader is this
# folder, wherever `tex-mml-chtml.js` is served from.
PARTS = ("tex-mml-chtml.js", "input", "output/chtml", "a11y", "ui", "sre")


def _mathjax_root() -> pathlib.Path:
    spec = importlib.util.find_spec("mathjax")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            root = pathlib.Path(location) / "static" / "mathjax"
            if (root / "es5" / "tex-mml-chtml.js").is_file():
                return root
    raise PluginError(
        "MathJax 3 is not installed: the docs serve it with the site. Install the "
        'docs extra, `pip install -e ".[docs]"` (it brings `django-static-mathjax`).'
    )


def on_files(files: Files, config: MkDocsConfig) -> Files:
    root = _mathjax_root()
    es5 = root / "es5"
    sources = [(root / "LICENSE", "LICENSE")]
    for part in PARTS:
        path = es5 / part
        found = sorted(path.rglob("*")) if path.is_dir() else [path]
        sources += [(p, p.relative_to(es5).as_posix()) for p in found if p.is_file()]
    for path, name in sources:
        files.append(File.generated(config, f"{TARGET}/{name}", abs_src_path=str(path)))
    return files
