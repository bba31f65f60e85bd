"""The README's example and every docstring example run as written."""

import doctest
import importlib
import pathlib
import re

import keras
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODULES = [
    "keras_recdrop.conversion",
    "keras_recdrop.embedding",
    "keras_recdrop.gal",
    "keras_recdrop.mc_dropout",
    "keras_recdrop.noise_mode",
    "keras_recdrop.norm_stabilizer",
    "keras_recdrop.semeniuta",
    "keras_recdrop.zoneout",
    "keras_recdrop.rnn",
    "keras_recdrop.states",
    # The example writes a SavedModel with a dynamic batch size, which
    # `export_mc` does on TensorFlow (on JAX it needs a fixed one).
    pytest.param(
        "keras_recdrop.serving",
        marks=pytest.mark.skipif(
            keras.backend.backend() != "tensorflow",
            reason="the example exports from the tensorflow backend",
        ),
    ),
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
