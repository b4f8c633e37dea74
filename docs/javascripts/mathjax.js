// MathJax 3 configuration. The library itself is served with the site
// (javascripts/vendor/mathjax/, copied from the `docs` extra by docs/hooks/mathjax.py),
// so the maths renders offline.
//
// Maths reaches the pages in two forms:
// - guide and API pages: pymdownx.arithmatex (generic mode) puts each formula in an
//   element of class `arithmatex`, as \( ... \) or \[ ... \];
// - notebook pages (mkdocs-jupyter): markdown cells keep Jupyter's $ ... $ and
//   $$ ... $$, inside elements of class `jp-RenderedMarkdown`;
// - the navigation and the table of contents (`md-nav__link`) show headings as
//   text, so a heading with maths reaches them as \( ... \) or $ ... $.
// Only those elements are typeset, so a dollar sign anywhere else (prose, code,
// cell outputs) is left as it is.
window.MathJax = {
  tex: {
    inlineMath: [
      ["\\(", "\\)"],
      ["$", "$"],
    ],
    displayMath: [
      ["\\[", "\\]"],
      ["$$", "$$"],
    ],
    processEscapes: true,
    processEnvironments: true,
  },
  startup: {
    typeset: false, // typeset below, only the elements that hold maths
  },
};

const MATH_ELEMENTS =
  ".arithmatex, .jp-RenderedMarkdown, .jp-RenderedLatex, .md-nav__link";

// `document$` (mkdocs-material) emits each page, also after instant navigation.
document$.subscribe(() => {
  MathJax.startup.promise.then(() => {
    MathJax.startup.output.clearCache();
    MathJax.typesetClear();
    MathJax.texReset();
    return MathJax.typesetPromise(
      Array.from(document.querySelectorAll(MATH_ELEMENTS)),
    );
  });
});
