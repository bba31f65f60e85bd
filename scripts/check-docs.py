"""Checks the built documentation site (CI's docs step, after the build).

    python scripts/check-docs.py SITE_DIR
    python scripts/check-docs.py --self-test

`mkdocs build --strict` catches broken links and missing objects; this
reads the HTML it wrote for what a reader of the site would see wrong and
a strict build lets through:

- example: a doctest rendered as nested blockquotes (Markdown's reading of
  `>>>`), or an API object whose docstring has a doctest and whose section
  shows no highlighted `>>>` code;
- equations: a code block on a cell page that states equations (they must
  be typeset), a formula left untypeset or that KaTeX could not render,
  or a cell page without a typeset equation;
- signature: a signature with `*args`, or with `**kwargs` but without every
  named argument of the Keras class it stands in for (`keras.layers.LSTM`,
  `GRU`, `LSTMCell`, `GRUCell`, `RNN`, `Embedding`);
- bases: a private base class (`._name`, `keras.src.`) in "Bases:";
- heading: a heading with nothing under it before the next heading;
- link: a `docs/NAME.md` path left as plain text in an API section;
- offline: a stylesheet, script, font or image loaded from another host.

Every run first checks that each of these detectors fires on a small page
made to fail it and stays quiet on a correct one, and that the build's
comparison of a docstring's equations with their TeX
(`scripts/docs/equations.py`) tells equal from different (`--self-test`
runs only that), so a check that silently stopped matching fails CI too.
Exits 1 and lists the findings, page by page, if there are any.
"""

from __future__ import annotations

import html
import inspect
import re
import sys
from pathlib import Path

# The Keras class whose named arguments a package class's signature must
# show when it takes **kwargs: by the end of the class name.
KERAS_COUNTERPARTS = (
    ("LSTMCell", "LSTMCell"),
    ("GRUCell", "GRUCell"),
    ("LSTM", "LSTM"),
    ("GRU", "GRU"),
    ("RNN", "RNN"),
    ("Embedding", "Embedding"),
)

_TAG = re.compile(r"<[^>]+>")
_OBJECT = re.compile(
    r'<div class="doc doc-object doc-(?:class|function)">\s*'
    r'<h(?P<level>[1-6]) id="(?P<id>[^"]+)"(?P<body>.*?)'
    r'(?=<div class="doc doc-object doc-(?:class|function)">|\Z)',
    re.DOTALL,
)
_SIGNATURE = re.compile(
    r'<div class="doc-signature highlight">(.*?)</div>', re.DOTALL
)
_PRE = re.compile(r"<pre[^>]*>(.*?)</pre>", re.DOTALL)
_BASES = re.compile(r'<p class="doc doc-class-bases">(.*?)</p>', re.DOTALL)
_HEADING_THEN_HEADING = re.compile(
    r"<h(?P<a>[1-6])[^>]*>(?P<text>(?:(?!</?h[1-6]).)*?)</h(?P=a)>"
    r"(?:\s|<div[^>]*>)*<h(?P<b>[1-6])[\s>]",
    re.DOTALL,
)
_DOC_CONTENTS = re.compile(
    r'<div class="doc doc-contents.*?(?=<div class="doc doc-object|\Z)',
    re.DOTALL,
)
_EXTERNAL = re.compile(
    r'<(?:link|script|img|source|iframe)\b[^>]*\b(?:href|src)="'
    r'(?P<url>(?:https?:)?//[^"]+)"[^>]*>',
)
_EQUATION_LINE = re.compile(
    r"^\s*[^=~]{1,40}?\s(?:=|~)\s.*"
    r"(?:σ|ĉ|ĥ|tanh|Bernoulli|_\{t-1\}|_t\b|\^[a-z]_)"
)


def text(fragment):
    return html.unescape(_TAG.sub("", fragment))


def keras_arguments(name):
    """The named arguments of `keras.layers.<name>.__init__`."""
    import keras

    signature = inspect.signature(getattr(keras.layers, name).__init__)
    return [
        p.name
        for p in signature.parameters.values()
        if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


def _counterpart(name):
    for ending, keras_name in KERAS_COUNTERPARTS:
        if name.endswith(ending):
            return keras_name
    return None


def check_signature(name, signature, keras_args=keras_arguments):
    found = []
    if re.search(r"(?<![*\w])\*[A-Za-z_]\w*", signature):
        found.append(f"{name}: *args in its signature: {signature}")
    if "**" in signature:
        keras_name = _counterpart(name)
        if keras_name:
            shown = set(re.findall(r"\b([A-Za-z_]\w*)\s*(?==|,|\))", signature))
            missing = [a for a in keras_args(keras_name) if a not in shown]
            if missing:
                found.append(
                    f"{name}: its signature hides arguments of "
                    f"keras.layers.{keras_name} behind **kwargs: "
                    + ", ".join(missing)
                )
    return found


def check_page(path, content, docstrings=None, keras_args=keras_arguments):
    """Findings for one page: (kind, message) pairs.

    `docstrings` maps an object id (`keras_recdrop.X`) to its docstring;
    None imports the package to read them.
    """
    found = []
    main = content
    start = content.find('<div class="md-content"')
    if start >= 0:
        main = content[start:]

    # Examples.
    if re.search(r"<blockquote>\s*<blockquote>", main):
        found.append(
            ("example", "nested blockquotes: a doctest read as Markdown")
        )
    for match in _OBJECT.finditer(main):
        object_id = match.group("id")
        body = match.group("body")
        doc = (docstrings if docstrings is not None else _docstrings()).get(
            object_id
        )
        if doc and ">>>" in doc and 'class="gp">&gt;&gt;&gt;' not in body:
            found.append(
                ("example", f"{object_id}: its doctest is not shown as code")
            )
        for signature in _SIGNATURE.findall(body)[:1]:
            sig = " ".join(text(signature).split())
            name = object_id.rsplit(".", 1)[-1]
            for message in check_signature(name, sig, keras_args):
                found.append(("signature", message))
        for bases in _BASES.findall(body)[:1]:
            names = text(bases)
            if re.search(r"\._|keras\.src\.", names):
                found.append(
                    ("bases", f"{object_id}: private base: {names.strip()}")
                )

    # Equations.
    if "katex-error" in main:
        found.append(("equations", "a formula KaTeX could not render"))
    prose = re.sub(
        r"<(pre|code|annotation)\b.*?</\1>", "", main, flags=re.DOTALL
    )
    if 'class="arithmatex"' in main or re.search(
        r"\\\[|\\\(|\$\$", text(prose)
    ):
        found.append(("equations", "a formula left untypeset"))
    if "/cells/" in "/" + path.replace("\\", "/"):
        if "katex-display" not in main:
            found.append(("equations", "a cell page with no typeset equation"))
        for block in _PRE.findall(main):
            code = text(block)
            if ">>>" in code or "import " in code:
                continue
            lines = [line for line in code.splitlines() if line.strip()]
            if any(_EQUATION_LINE.match(line) for line in lines):
                found.append(
                    (
                        "equations",
                        "equations in a code block, not typeset: "
                        + lines[0].strip()[:60],
                    )
                )

    # Headings with nothing under them.
    for match in _HEADING_THEN_HEADING.finditer(main):
        if int(match.group("b")) <= int(match.group("a")):
            heading = text(match.group("text")).replace("¶", "").strip()
            found.append(("heading", f"empty heading {heading!r}"))

    # Plain page paths in API sections.
    for section in _DOC_CONTENTS.findall(main):
        plain = re.sub(r"<a\b.*?</a>", "", section, flags=re.DOTALL)
        for page in re.findall(r"docs/[\w-]+\.md", text(plain)):
            found.append(("link", f"{page} as plain text in an API section"))

    # Offline.
    for match in _EXTERNAL.finditer(content):
        tag = match.group(0)
        if 'rel="canonical"' in tag or "<a " in tag:
            continue
        found.append(("offline", f"loads {match.group('url')}"))
    return found


_DOCSTRINGS = None


def _docstrings():
    global _DOCSTRINGS
    if _DOCSTRINGS is None:
        import keras_recdrop

        _DOCSTRINGS = {
            f"keras_recdrop.{name}": inspect.getdoc(
                getattr(keras_recdrop, name)
            )
            or ""
            for name in keras_recdrop.__all__
            if not name.startswith("_")
        }
    return _DOCSTRINGS


def check_css(site):
    found = []
    for css in site.rglob("*.css"):
        for url in re.findall(
            r"url\(\s*['\"]?((?:https?:)?//[^'\")]+)", css.read_text()
        ):
            found.append((str(css.relative_to(site)), ("offline", url)))
    return found


def check_site(site):
    site = Path(site)
    results = []
    pages = sorted(
        p
        for p in site.rglob("*.html")
        if "assets" not in p.relative_to(site).parts
    )
    if not pages:
        return [("(site)", ("site", f"no HTML pages under {site}"))]
    for page in pages:
        rel = str(page.relative_to(site))
        for finding in check_page(rel, page.read_text(encoding="utf-8")):
            results.append((rel, finding))
    results.extend(check_css(site))
    if not (site / "assets" / "katex" / "katex.min.css").is_file():
        results.append(("(site)", ("equations", "KaTeX's stylesheet missing")))
    return results


# --- self-test: each detector fires on a page made to fail it ------------

_CLEAN_OBJECT = (
    '<div class="doc doc-object doc-class">'
    '<h2 id="keras_recdrop.GalLSTMCell" class="doc doc-heading">'
    "GalLSTMCell</h2>"
    '<div class="doc-signature highlight"><pre><code>GalLSTMCell('
    "units, activation, recurrent_activation, **kwargs)</code></pre></div>"
    '<div class="doc doc-contents first">'
    '<p class="doc doc-class-bases">Bases: <code>keras.layers.Layer</code></p>'
    "<p>Text, see <a href='../../upstream/'>docs/upstream.md</a>.</p>"
    '<div class="highlight"><pre><code><span class="gp">&gt;&gt;&gt; </span>'
    "x = 1</code></pre></div></div></div>"
)
_CLEAN = (
    '<html><head><link rel="stylesheet" href="../assets/katex/katex.min.css">'
    '</head><body><div class="md-content"><h1 id="t">Title</h1><p>Intro.</p>'
    '<h2 id="equations">Equations</h2><span class="katex-display">'
    '<span class="katex">x</span></span>'
    "<blockquote><p>A quotation.</p></blockquote>"
    '<div class="highlight"><pre><code>import keras_recdrop\n'
    "layer = keras_recdrop.RNN(cell)</code></pre></div>"
    + _CLEAN_OBJECT
    + "</div></body></html>"
)


def _self_test():
    docstrings = {"keras_recdrop.GalLSTMCell": "Text.\n\n>>> x = 1\n"}

    def keras_args(name):
        return {
            "LSTMCell": ["units", "activation", "recurrent_activation"],
            "RNN": ["cell", "return_sequences"],
        }[name]

    def kinds(page, path="cells/gal-lstm/index.html"):
        return {
            kind for kind, _ in check_page(path, page, docstrings, keras_args)
        }

    failures = []
    if kinds(_CLEAN):
        failures.append(
            "a correct page is flagged: "
            + str(
                check_page("cells/x/index.html", _CLEAN, docstrings, keras_args)
            )
        )
    broken = {
        "example": [
            _CLEAN.replace(
                "<p>Intro.</p>",
                "<blockquote><blockquote><blockquote><p>import numpy"
                "</p></blockquote></blockquote></blockquote>",
            ),
            _CLEAN.replace('<span class="gp">&gt;&gt;&gt; </span>', ""),
        ],
        "equations": [
            _CLEAN.replace(
                "<p>Intro.</p>",
                '<div class="highlight"><pre><code>ĉ_t = f * c_{t-1} + i * g\n'
                "h_t = o * tanh(c_t)</code></pre></div>",
            ),
            _CLEAN.replace(
                "<p>Intro.</p>",
                '<div class="arithmatex">\\[x = 1\\]</div>',
            ),
            _CLEAN.replace("<p>Intro.</p>", "<p>$$ x = 1 $$</p>"),
            _CLEAN.replace("katex-display", "katex-block"),
            _CLEAN.replace(
                '<span class="katex">', '<span class="katex-error">'
            ),
        ],
        "signature": [
            _CLEAN.replace(
                "units, activation, recurrent_activation, **kwargs",
                "*args, **kwargs",
            ),
            _CLEAN.replace(
                "units, activation, recurrent_activation, **kwargs",
                "units, dropout=0.0, **kwargs",
            ),
        ],
        "bases": [
            _CLEAN.replace(
                "keras.layers.Layer", "keras_recdrop._compat.RNNLayer"
            ),
            _CLEAN.replace("keras.layers.Layer", "keras.src.layers.Layer"),
        ],
        "heading": [
            _CLEAN.replace(
                '<div class="doc doc-object doc-class">',
                '<h2 id="api">API</h2><div class="doc doc-object doc-class">',
            ),
        ],
        "link": [
            _CLEAN.replace(
                "<a href='../../upstream/'>docs/upstream.md</a>",
                "docs/upstream.md",
            ),
        ],
        "offline": [
            _CLEAN.replace(
                "../assets/katex/katex.min.css",
                "https://cdn.example.org/katex.min.css",
            ),
        ],
    }
    for kind, pages in broken.items():
        for number, page in enumerate(pages, 1):
            if kind not in kinds(page):
                failures.append(
                    f"the {kind!r} check missed its broken page {number}"
                )
    # A code block of Python on a cell page is not an equation.
    if "equations" in kinds(_CLEAN):
        failures.append("a Python code block was taken for equations")
    failures.extend(_equations_self_test())
    return failures


def _equations_self_test():
    """The build's docstring-vs-TeX check tells equal from different."""
    sys.path.insert(0, str(Path(__file__).resolve().parent / "docs"))
    import equations

    plain = "c_t = f * c_{t-1} + i * g     (plain update)\nh_t ~ Bernoulli(z)"
    same = (
        r"\begin{aligned} c_t &= f \odot c_{t-1} + i \odot g"
        r" && \text{(plain update)} \\ h_t &\sim \operatorname{Bernoulli}(z)"
        r" \end{aligned}"
    )
    failures = []
    try:
        equations.check_same("self-test", plain, same)
    except ValueError as error:
        failures.append(f"equal equations taken for different: {error}")
    for wrong in (
        same.replace(r"i \odot g", r"i + g"),
        same.replace("c_{t-1}", "c_{t}"),
        same.replace(r"\sim", "="),
    ):
        try:
            equations.check_same("self-test", plain, wrong)
        except ValueError:
            continue
        failures.append(f"different equations taken for equal: {wrong}")
    return failures


def main(argv):
    failures = _self_test()
    if failures:
        print("check-docs.py self-test FAILED:")
        for failure in failures:
            print(f"  {failure}")
        return 1
    if argv == ["--self-test"]:
        print("check-docs.py self-test: every check detects its broken page")
        return 0
    if len(argv) != 1:
        print(__doc__)
        return 2
    results = check_site(argv[0])
    if results:
        print(f"check-docs.py: {len(results)} problem(s) in the built site:")
        for page, (kind, message) in results:
            print(f"  {page}: [{kind}] {message}")
        return 1
    print("check-docs.py: the built site passes every check")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
