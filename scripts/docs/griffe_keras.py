"""Griffe extension: Keras-style docstrings rendered as the site needs them.

The package's docstrings follow Keras's style, which griffe's Google parser
reads differently from what a reader of the site expects:

- `Example:` followed by a blank line and unindented doctest lines is plain
  text to griffe, and Markdown turns the `>>>` prompts into three nested
  blockquotes. Here it becomes an examples section (highlighted code).
- `Call arguments:` is not a section griffe knows, so it becomes an
  admonition holding one paragraph. Here it becomes a list of arguments,
  like `Args:`, under its own title.
- An equation block (an indented block after a paragraph that starts with
  "Equations") stays plain text in `help()`; on the site it is replaced by
  its TeX from `docs/equations.yml`, typeset by KaTeX at build time
  (`scripts/docs/hooks.py`). The build fails if a block has no TeX, or if
  the TeX does not state the same equations (`equations.same_equations`).
- The classes' bases are shown by their public names (`keras.layers.RNN`,
  `keras_recdrop.LSTMCellBase`): private bases and mixins the reader cannot
  look up (`keras_recdrop._compat.RNNLayer`, `keras.src....`) are replaced
  by their nearest public ancestors.

The docstrings themselves are not changed: `help()` shows them as written.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
import textwrap
from pathlib import Path

import griffe

sys.path.insert(0, str(Path(__file__).resolve().parent))

import equations  # noqa: E402

PACKAGE = "keras_recdrop"

# "Example:" (or "Examples:"), a blank line, then doctest lines at the
# same indentation as the title.
_EXAMPLE = re.compile(
    r"^(?P<indent>[ ]*)Examples?:[ ]*\n[ ]*\n"
    r"(?P<body>(?P=indent)>>> .*(?:\n(?P=indent)\S.*|\n(?P=indent)[ ]+.*)*)",
    re.MULTILINE,
)


def _examples_section(match):
    indent = match.group("indent")
    body = textwrap.dedent(match.group("body"))
    return f"{indent}Examples:\n" + textwrap.indent(body, indent + "    ")


def _call_arguments(admonition):
    """The text of a `Call arguments:` admonition, parsed as `Args:`."""
    text = admonition.value.description
    # The first line of a docstring is its summary, never a section.
    docstring = griffe.Docstring(
        "Call arguments.\n\nArgs:\n" + textwrap.indent(text, "    "),
        parser="google",
        parser_options={"warnings": False},
    )
    sections = docstring.parse()
    if [s.kind.value for s in sections] != ["text", "parameters"]:
        raise ValueError(f"cannot read 'Call arguments:' as a list:\n{text}")
    section = sections[1]
    section.title = "Call arguments:"
    return section


def _typeset_equations(obj, value):
    """`value` with each equation block replaced by its TeX block."""
    blocks = equations.docstring_blocks(value)
    if not blocks:
        return value
    tex = equations.load()
    out = value
    for number, block in enumerate(blocks):
        key = equations.key(obj.name, number, len(blocks))
        if key not in tex:
            raise ValueError(
                f"{obj.path}: docstring equation block {number + 1} has no "
                f"TeX in docs/equations.yml (key {key!r}):\n{block.text}"
            )
        equations.check_same(key, block.text, tex[key])
        display = f"\n$$\n{tex[key].strip()}\n$$\n"
        out = out.replace(block.source, display, 1)
    return out


def _public_name(base):
    """`base` as the reader can look it up, or None."""
    module = base.__module__ or ""
    name = base.__name__
    if module == PACKAGE or module.startswith(PACKAGE + "."):
        package = importlib.import_module(PACKAGE)
        if name in package.__all__ and getattr(package, name) is base:
            return f"{PACKAGE}.{name}"
        return None
    if module.startswith("keras"):
        import keras

        for namespace in ("layers", "models", "ops"):
            if getattr(getattr(keras, namespace, None), name, None) is base:
                return f"keras.{namespace}.{name}"
    return None


def _public_bases(cls):
    bases = []
    for base in cls.__bases__:
        if base is object:
            continue
        name = _public_name(base)
        for public in [name] if name else _public_bases(base):
            if public not in bases:
                bases.append(public)
    return bases


def _runtime(obj):
    module = importlib.import_module(obj.module.path)
    return getattr(module, obj.name, None)


class KerasDocstrings(griffe.Extension):
    """Reads Keras-style docstrings into sections griffe renders well."""

    def on_package(self, *, pkg, loader, **kwargs):
        if pkg.name != PACKAGE:
            return
        for obj in _objects(pkg):
            if obj.is_class:
                runtime = _runtime(obj)
                if inspect.isclass(runtime):
                    obj.bases = _public_bases(runtime)
            for target in (obj, obj.members.get("__init__")):
                if target is None or target.is_alias or not target.docstring:
                    continue
                _rewrite(target)


def _rewrite(obj):
    docstring = obj.docstring
    value = _EXAMPLE.sub(_examples_section, docstring.value)
    value = _typeset_equations(obj, value)
    docstring.value = value
    sections = docstring.parse()
    for index, section in enumerate(sections):
        if (
            section.kind.value == "admonition"
            and (section.title or "").rstrip(":").lower() == "call arguments"
        ):
            sections[index] = _call_arguments(section)
    # `parsed` is a cached property: the rewritten sections are what the
    # templates read.
    docstring.__dict__["parsed"] = sections


def _objects(module):
    """Every class and function defined in `module` and its submodules."""
    for member in module.members.values():
        if member.is_alias:
            continue
        if member.is_module:
            yield from _objects(member)
        elif member.is_class or member.is_function:
            yield member
