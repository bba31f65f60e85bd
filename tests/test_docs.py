"""The README's example and every docstring example run as written."""

import doctest
import importlib
import inspect
import pathlib
import re

import keras
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Skipped by name: the private modules (their names are the package's
# internals), and modules that define no public class or function.
PRIVATE_MODULES = {
    "keras_recdrop._compat",
    "keras_recdrop._gradient",
    "keras_recdrop._stateless",
    "keras_recdrop._validation",
    "keras_recdrop._version",
}
WITHOUT_PUBLIC_NAMES = {
    "keras_recdrop.layers",  # re-exports the regularizers' layers
    "keras_recdrop",  # the same for the whole package
}
# Modules whose examples run on one backend only: `export_mc`'s example
# writes a SavedModel with a dynamic batch size, which it does from
# TensorFlow (from JAX it needs a fixed one).
EXAMPLES_RUN_ON = {"keras_recdrop.serving": "tensorflow"}
MODULES = sorted(
    "keras_recdrop" + ("" if path.stem == "__init__" else f".{path.stem}")
    for path in (ROOT / "keras_recdrop").glob("*.py")
)


def _public_objects(module):
    """The classes and functions `module` defines under a public name."""
    return {
        name: value
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and value.__module__ == module.__name__
    }


@pytest.mark.parametrize("name", MODULES)
def test_every_public_class_and_function_has_an_example_that_runs(name):
    if name in PRIVATE_MODULES:
        pytest.skip(f"{name} is private")
    module = importlib.import_module(name)
    public = _public_objects(module)
    if name in WITHOUT_PUBLIC_NAMES:
        assert public == {}, f"{name} has public names now: {sorted(public)}"
        return
    assert public, f"{name} has no public class or function"
    without = [n for n, v in public.items() if ">>>" not in (v.__doc__ or "")]
    assert without == []
    backend = EXAMPLES_RUN_ON.get(name, keras.backend.backend())
    if backend != keras.backend.backend():
        pytest.skip(f"{name}'s examples run on the {backend} backend")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= len(public)
    assert result.failed == 0


def test_readme_example_trains():
    readme = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    model = namespace["model"]
    assert len(model.history.history["loss"]) == 1


def test_readme_keeps_exactly_two_setup_commands():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```bash\n(.*?)```", readme, re.S)
    assert [c.strip() for c in commands] == [
        "bash scripts/demo.sh",
        "bash scripts/test.sh",
    ]


def test_demo_runs_the_fixes_table_then_the_quick_comparison():
    demo = (ROOT / "scripts" / "demo.sh").read_text()
    fixes = demo.index("python examples/fixes.py")
    assert demo.index("python examples/char_lm.py --quick") > fixes


def test_every_page_in_the_site_navigation_exists():
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())

    def pages(node):
        if isinstance(node, str):
            yield node
        elif isinstance(node, dict):
            for value in node.values():
                yield from pages(value)
        elif isinstance(node, list):
            for value in node:
                yield from pages(value)

    missing = [
        page
        for page in pages(config["nav"])
        if not (ROOT / "docs" / page).is_file()
    ]
    assert not missing


@pytest.mark.parametrize(
    "example, argv, message",
    [
        ("char_lm", ["--epochs", "0"], "positive integer"),
        ("char_lm", ["--corpus", "/no/such/file"], "no such file"),
        ("char_lm", ["--learning-rate", "nan"], "positive number"),
        ("permuted_digits", ["--seeds", "1", "1"], "repeated seed"),
        ("permuted_digits", ["--units", "-3"], "positive integer"),
        ("gradient_flow", ["--zoneout-c", "1.5"], "probability"),
        ("mc_forecast", ["--samples", "0"], "positive integer"),
        ("mc_forecast", ["--level", "0"], "probability in (0, 1)"),
        ("mc_forecast", ["--recurrent-dropout", "1"], "probability"),
    ],
)
def test_example_command_lines_reject_bad_arguments(
    example, argv, message, capsys, monkeypatch
):
    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    module = importlib.import_module(example)
    with pytest.raises(SystemExit) as exit_info:
        module.parse_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
