"""The docstrings' equations and their TeX in `docs/equations.yml`.

A docstring states its equations in plain text, readable in `help()`: an
indented block after a paragraph that starts with "Equations". The site
shows the same equations typeset, from TeX written once in
`docs/equations.yml` (keyed by the class or function name). `check_same`
proves that the two state the same equations: both are reduced to one
canonical string (TeX commands to the plain notation's symbols, spacing,
alignment and grouping braces dropped) and must be equal, symbol for
symbol. Editing a docstring's equations without their TeX, or the TeX
without the docstring, fails the documentation build.

Plain notation <-> TeX: `*` is `\\odot` (elementwise product), `σ` is
`\\sigma`, `ĉ` is `\\hat{c}`, `~` is `\\sim`, `∈` is `\\in`, `‖` is
`\\lVert`/`\\rVert`, `a / (b)` is `\\frac{a}{b}`, words (`tanh`, `Bernoulli`,
`beta`, a comment in parentheses) are `\\tanh`, `\\operatorname{...}`,
`\\beta`, `\\text{...}`.
"""

from __future__ import annotations

import re
import textwrap
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import yaml

TABLE = Path(__file__).resolve().parents[2] / "docs" / "equations.yml"


@dataclass
class Block:
    source: str  # the block as it stands in the docstring
    text: str  # dedented


def load():
    with open(TABLE, encoding="utf-8") as f:
        return yaml.safe_load(f)


def key(name, number, count):
    return name if count == 1 else f"{name} ({number + 1})"


def docstring_blocks(value):
    """The equation blocks of a cleaned docstring, in order."""
    lines = value.split("\n")
    blocks = []
    i = 0
    while i < len(lines):
        if not lines[i].lstrip().startswith("Equation"):
            i += 1
            continue
        indent = len(lines[i]) - len(lines[i].lstrip())
        # The paragraph ends at a line ending with ":".
        while i < len(lines) and not lines[i].rstrip().endswith(":"):
            i += 1
        i += 1
        if i >= len(lines) or lines[i].strip():
            continue
        start = i + 1
        end = start
        while end < len(lines) and (
            not lines[end].strip()
            or len(lines[end]) - len(lines[end].lstrip()) > indent
        ):
            end += 1
        while end > start and not lines[end - 1].strip():
            end -= 1
        if end > start:
            source = "\n".join(lines[start:end])
            blocks.append(Block(source, textwrap.dedent(source)))
        i = end
    return blocks


_TEX_WORDS = {
    r"\sigma": "σ",
    r"\odot": "*",
    r"\cdot": "*",
    r"\sim": "~",
    r"\in": "∈",
    r"\lVert": "‖",
    r"\rVert": "‖",
    r"\|": "‖",
    r"\{": "",
    r"\}": "",
    r"\tanh": "tanh",
    r"\sum": "sum",
    r"\beta": "beta",
    r"\dots": "...",
    r"\ldots": "...",
    r"\prime": "'",
    r"\_": "_",
    r"\\": "",
    r"\quad": "",
    r"\qquad": "",
    r"\left": "",
    r"\right": "",
    r"\,": "",
    r"\;": "",
    r"\:": "",
    r"\!": "",
}
_TEX_WRAPPERS = ("text", "operatorname", "mathrm", "textrm", "mathit")
_TEX_ENVIRONMENTS = re.compile(r"\\(begin|end)\{(aligned|gathered)\}")


def _group(tex, start):
    """The balanced `{...}` group at `start`: (contents, end)."""
    if tex[start] != "{":
        return tex[start], start + 1
    depth = 0
    for i in range(start, len(tex)):
        depth += {"{": 1, "}": -1}.get(tex[i], 0)
        if depth == 0:
            return tex[start + 1 : i], i + 1
    raise ValueError(f"unbalanced braces in {tex!r}")


def _expand(tex):
    """`\\frac`, `\\hat` and the text wrappers, expanded recursively."""
    out = []
    i = 0
    while i < len(tex):
        match = re.match(r"\\([A-Za-z]+)\s*", tex[i:])
        if match and match.group(1) == "frac":
            numerator, j = _group(tex, i + match.end())
            denominator, j = _group(tex, j)
            out.append(f"{_expand(numerator)}/({_expand(denominator)})")
            i = j
        elif match and match.group(1) == "hat":
            letter, j = _group(tex, i + match.end())
            out.append(unicodedata.normalize("NFC", letter + "\u0302"))
            i = j
        elif match and match.group(1) in _TEX_WRAPPERS:
            contents, j = _group(tex, i + match.end())
            out.append(_expand(contents))
            i = j
        else:
            out.append(tex[i])
            i += 1
    return "".join(out)


def _canonical(text):
    text = text.replace("{", "").replace("}", "")
    text = text.replace("||", "‖")
    return re.sub(r"\s+", "", text)


def plain_canonical(plain):
    return _canonical(plain)


def tex_canonical(tex):
    tex = _TEX_ENVIRONMENTS.sub("", tex)
    tex = tex.replace("&", "")
    # Longest commands first, so that `\sigma` is not read as `\s...`.
    for command in sorted(_TEX_WORDS, key=len, reverse=True):
        pattern = re.escape(command)
        if command[-1].isalpha():
            pattern += r"(?![A-Za-z])"
        tex = re.sub(pattern, lambda _, c=command: _TEX_WORDS[c], tex)
    tex = _expand(tex)
    unknown = re.findall(r"\\[A-Za-z]+", tex)
    if unknown:
        raise ValueError(f"TeX commands the check does not know: {unknown}")
    return _canonical(tex)


def check_same(name, plain, tex):
    """Raises ValueError unless `plain` and `tex` state the same equations."""
    a, b = plain_canonical(plain), tex_canonical(tex)
    if a != b:
        width = next(
            (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
            min(len(a), len(b)),
        )
        raise ValueError(
            f"docs/equations.yml[{name!r}] does not state the docstring's "
            f"equations; they differ from character {width}:\n"
            f"  docstring: ...{a[max(0, width - 30) : width + 30]}\n"
            f"  TeX:       ...{b[max(0, width - 30) : width + 30]}\n"
            f"docstring block:\n{plain}\nTeX:\n{tex}"
        )
