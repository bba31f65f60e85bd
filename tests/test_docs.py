"""The README's example and every docstring example run as written."""

import doctest
import importlib
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODULES = [
    "keras_recdrop.embedding",
    "keras_recdrop.gal",
    "keras_recdrop.norm_stabilizer",
    "keras_recdrop.semeniuta",
    "keras_recdrop.zoneout",
    "keras_recdrop.rnn",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


def test_readme_example_trains():
    readme = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    model = namespace["model"]
    assert len(model.history.history["loss"]) == 1
