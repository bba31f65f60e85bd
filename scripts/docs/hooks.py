"""MkDocs hooks: typeset math at build time, and link docstrings' page paths.

Math. `pymdownx.arithmatex` (generic mode) marks `$...$` and `$$...$$` in
the pages (and in the docstrings' TeX from `docs/equations.yml`, see
`griffe_keras.py`). Here each page's formulas are typeset by KaTeX at build
time (`katex-render.js`, one `node` run per page), so the site ships HTML
and KaTeX's stylesheet and fonts, copied from the npm package
(`npm ci --prefix scripts/docs`), and no script: it renders offline, with
JavaScript off too. A formula KaTeX cannot parse fails the build.

`<!-- equations: NAME -->` on its own line in a page is replaced by the
display block of `NAME`'s docstring equations (`docs/equations.yml`), so a
cell page shows exactly the docstring's equations.

Links. A docstring names pages by their path in the repository
(`docs/upstream.md`), which reads well in `help()`; in the rendered API
sections such a path becomes a link to the page.
"""

from __future__ import annotations

import html
import json
import posixpath
import re
import subprocess
import sys
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import equations  # noqa: E402

KATEX_DIST = HERE / "node_modules" / "katex" / "dist"
KATEX_DEST = "assets/katex"
KATEX_CSS = f"{KATEX_DEST}/katex.min.css"

_PLACEHOLDER = re.compile(r"^<!-- equations: (\S+) -->[ ]*$", re.MULTILINE)
_MATH = re.compile(
    r'<(?P<tag>span|div) class="arithmatex">(?P<body>.*?)</(?P=tag)>',
    re.DOTALL,
)
_DOC_PATH = re.compile(r"(?:<code>)?docs/(?P<page>[a-z0-9_-]+)\.md(?:</code>)?")
_DOC_CONTENTS = re.compile(
    r'(<div class="doc doc-contents.*?)(?=<div class="doc doc-object|\Z)',
    re.DOTALL,
)


def on_config(config):
    if not (KATEX_DIST / "katex.min.css").is_file():
        raise PluginError(
            "KaTeX is not installed: run `npm ci --prefix scripts/docs` "
            "(scripts/docs.sh does)"
        )
    if KATEX_CSS not in config.extra_css:
        config.extra_css.insert(0, KATEX_CSS)
    return config


def on_files(files, config):
    """Adds KaTeX's stylesheet and fonts to the site."""
    for path in [KATEX_DIST / "katex.min.css"] + sorted(
        (KATEX_DIST / "fonts").glob("*.woff2")
    ):
        rel = path.relative_to(KATEX_DIST).as_posix()
        files.append(
            File.generated(
                config, f"{KATEX_DEST}/{rel}", abs_src_path=str(path)
            )
        )
    return files


def on_page_markdown(markdown, page, config, files):
    table = None

    def block(match):
        nonlocal table
        table = table or equations.load()
        name = match.group(1)
        if name not in table:
            raise PluginError(
                f"{page.file.src_path}: no equations named {name!r} in "
                "docs/equations.yml"
            )
        return f"$$\n{table[name].strip()}\n$$"

    return _PLACEHOLDER.sub(block, markdown)


def _typeset(formulas, where):
    result = subprocess.run(
        ["node", str(HERE / "katex-render.js")],
        input=json.dumps(formulas),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise PluginError(f"{where}: {result.stderr.strip()}")
    return json.loads(result.stdout)


def _tex(body):
    """The TeX of arithmatex's generic output: `\\(...\\)` or `\\[...\\]`."""
    body = html.unescape(body).strip()
    if body.startswith(("\\(", "\\[")):
        return body[2:-2].strip(), body.startswith("\\[")
    raise PluginError(f"unexpected math markup: {body[:60]!r}")


def _link_doc_paths(content, page, files):
    def link(match):
        target = files.get_file_from_path(f"{match.group('page')}.md")
        if target is None:
            return match.group(0)
        url = posixpath.relpath(target.url or ".", page.url or ".")
        if target.url.endswith("/") or not target.url:
            url = url.rstrip("/") + "/"
        text = match.group(0)
        return f'<a href="{url}">{text}</a>'

    def section(match):
        return _DOC_PATH.sub(link, match.group(1))

    return _DOC_CONTENTS.sub(section, content)


def on_page_content(content, page, config, files):
    content = _link_doc_paths(content, page, files)
    matches = list(_MATH.finditer(content))
    if not matches:
        return content
    rendered = _typeset(
        [list(_tex(m.group("body"))) for m in matches], page.file.src_path
    )
    out = []
    last = 0
    for match, markup in zip(matches, rendered, strict=True):
        out.append(content[last : match.start()])
        out.append(markup)
        last = match.end()
    out.append(content[last:])
    return "".join(out)
