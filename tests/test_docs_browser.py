"""The documentation site in a real browser: MathJax, served with the site, typesets
the maths of the guide pages (arithmatex, `\\(...\\)`) and of the notebook pages
(Jupyter's `$...$`), and no raw LaTeX is left in the text a reader sees.

The site is built with `mkdocs build`, served on localhost and opened in headless
Chromium, driven through the DevTools protocol over a pipe (`--remote-debugging-pipe`:
JSON messages separated by NUL bytes, no websocket and no extra package). Needs a
`chromium` binary (Debian's `chromium` package; `.ci/run` installs it).
"""

import contextlib
import fcntl
import functools
import http.server
import json
import os
import pathlib
import re
import select
import shutil
import subprocess
import sys
import threading
import time

import pytest


ROOT = pathlib.Path(__file__).resolve().parent.parent
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
BROWSER = next((path for name in BROWSERS if (path := shutil.which(name))), None)

if BROWSER is None and os.environ.get("CI"):
    # .ci/run installs Chromium: in CI a missing browser is a broken setup, not a skip.
    raise RuntimeError("no chromium binary on PATH in CI: .ci/run should install it")
pytestmark = [
    pytest.mark.slow,  # builds the site and starts a browser
    pytest.mark.skipif(
        BROWSER is None,
        reason="no chromium binary on PATH: install one to run the browser docs test "
        "(Debian: `apt-get install chromium`; .ci/run does)",
    ),
]


def _site_pages() -> list[str]:
    """Every page of the site, as its URL path: the Markdown pages and notebooks."""
    pages = [
        p.relative_to(ROOT / "docs").with_suffix("").as_posix()
        for p in (ROOT / "docs").glob("**/*.md")
        if "examples" not in p.relative_to(ROOT / "docs").parts
    ]
    pages += [f"examples/{p.stem}" for p in (ROOT / "examples").glob("*.ipynb")]
    return sorted("" if p == "index" else f"{p}/" for p in pages)


PAGES = _site_pages()
# Pages that must show typeset maths: guide pages (arithmatex), an API page (docstring
# maths, a heading with maths) and notebook pages (`$...$`, `$$...$$` in markdown).
MATH_PAGES = (
    "two_views/",
    "parallel/",
    "api/neurons/",
    "examples/quickstart/",
    "examples/custom_neuron/",
)

# After the page has loaded: wait until MathJax has finished every typeset queued on
# `MathJax.startup.promise`, then return the text a reader sees (text nodes
# in rendered elements, outside code and MathJax's own output) and what MathJax made.
COLLECT = """
(async () => {
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  // mkdocs-material's `document$` has emitted this page (it replays to a late
  // subscriber), so the site's handler has queued its typeset on MathJax's promise.
  if (window.document$) await new Promise((done) => window.document$.subscribe(done));
  // The scripts ran before the load event: without `MathJax.startup`, MathJax did
  // not load at all. Otherwise wait until no more typesetting is queued.
  for (let i = 0; i < 100 && window.MathJax?.startup?.promise; i++) {
    const promise = window.MathJax.startup.promise;
    await promise;
    await sleep(50);
    if (window.MathJax.startup.promise === promise) break;
  }
  const skip = "pre, code, script, style, textarea, mjx-container";
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const parts = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const element = node.parentElement;
    if (!element || element.closest(skip) || !element.checkVisibility()) continue;
    parts.push(node.nodeValue);
  }
  const scripts = Array.from(document.scripts, (s) => s.src).filter(Boolean);
  return {
    text: parts.join(""),
    math: document.querySelectorAll("mjx-container").length,
    errors: Array.from(
      document.querySelectorAll("mjx-merror"),
      (e) => e.getAttribute("data-mjx-error") || e.textContent,
    ),
    mathjax: window.MathJax?.version ?? null,
    foreign_scripts: scripts.filter((src) => !src.startsWith(location.origin)),
  };
})()
"""

# Raw TeX that MathJax should have typeset: $...$, $$...$$, \(...\), \[...\].
RAW_MATH = re.compile(r"\$[^$\n]+\$|\$\$|\\\(|\\\)|\\\[|\\\]")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


# Starts the browser with the given descriptors as its fds 3 and 4.
_EXEC_WITH_PIPES = (
    "import os, sys; os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4); "
    "os.execv(sys.argv[3], sys.argv[3:])"
)


def _above_9(fd: int) -> int:
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return moved


class DevTools:
    """A headless Chromium driven through the DevTools protocol over a pipe."""

    def __init__(self, browser: str, profile: pathlib.Path):
        # The browser reads commands from its fd 3 and writes replies to its fd 4;
        # its ends of the pipes are moved above 9 so that neither is 3 or 4 already.
        command_read, self._command_write = os.pipe()
        self._reply_read, reply_write = os.pipe()
        command_read, reply_write = (_above_9(fd) for fd in (command_read, reply_write))
        flags = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,1024",
            f"--user-data-dir={profile}",
            "--remote-debugging-pipe",
            "about:blank",
        ]
        self._process = subprocess.Popen(
            [sys.executable, "-c", _EXEC_WITH_PIPES, str(command_read)]
            + [str(reply_write), browser, *flags],
            pass_fds=(command_read, reply_write),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(command_read)
        os.close(reply_write)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._reply_read], [], [], max(left, 0))
            if not ready:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._reply_read, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe (did it crash?)")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, session: str | None = None, timeout=60.0, **params):
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        os.write(self._command_write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def wait_for(self, event: str, session: str, timeout=60.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for i, message in enumerate(self.events):
                if (
                    message.get("method") == event
                    and message.get("sessionId") == session
                ):
                    return self.events.pop(i)
            self.events.append(self._read(deadline))

    def close(self):
        with contextlib.suppress(OSError, RuntimeError, TimeoutError):
            self.call("Browser.close", timeout=10)
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        os.close(self._command_write)
        os.close(self._reply_read)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The built site, served on localhost; yields its base URL."""
    site_dir = tmp_path_factory.mktemp("browser") / "site"
    result = subprocess.run(
        # Not strict: a warning fails tests/test_docs.py, and should not hide what
        # the pages show.
        [sys.executable, "-m", "mkdocs", "build", "--no-strict", "--site-dir"]
        + [str(site_dir)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    handler = functools.partial(_Quiet, directory=str(site_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    devtools = DevTools(BROWSER, tmp_path_factory.mktemp("chromium-profile"))
    yield devtools
    devtools.close()


def render(browser: DevTools, url: str) -> dict:
    """Open `url` in a new tab; once MathJax is done, what the page shows."""
    target = browser.call("Target.createTarget", url="about:blank")["targetId"]
    session = browser.call("Target.attachToTarget", targetId=target, flatten=True)
    session = session["sessionId"]
    try:
        browser.call("Page.enable", session)
        browser.call("Page.navigate", session, url=url)
        browser.wait_for("Page.loadEventFired", session)
        result = browser.call(
            "Runtime.evaluate",
            session,
            expression=COLLECT,
            awaitPromise=True,
            returnByValue=True,
        )
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"]["value"]
    finally:
        browser.call("Target.closeTarget", targetId=target)


def test_pages_found():
    assert set(MATH_PAGES) <= set(PAGES)
    assert "" in PAGES and "api/solvers/" in PAGES


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page or "index")
def test_no_raw_latex(site, browser, page):
    """MathJax runs on every page, typesets without errors, and leaves no raw TeX."""
    shown = render(browser, site + page)
    assert shown["mathjax"] is not None and shown["mathjax"].startswith("3."), (
        f"{page}: MathJax 3 did not load (is it served with the site?)"
    )
    assert not shown["foreign_scripts"], (
        f"{page}: scripts loaded from outside the site, so it breaks offline: "
        f"{shown['foreign_scripts']}"
    )
    raw = [
        shown["text"][max(m.start() - 40, 0) : m.end() + 40]
        for m in RAW_MATH.finditer(shown["text"])
    ]
    assert not raw, f"{page}: raw LaTeX left in the rendered page: {raw}"
    assert not shown["errors"], f"{page}: MathJax errors: {shown['errors']}"
    if page in MATH_PAGES:
        assert shown["math"] >= 3, f"{page}: only {shown['math']} formulas typeset"
