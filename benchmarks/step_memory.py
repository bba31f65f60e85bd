"""What `xla_memory.py` and `tf_memory.py` share: arguments and the table.

Each script measures one figure per variant of `run.py` (XLA's temporary
buffers on JAX, TensorFlow's peak tensor bytes) with its own probe; this
module parses the common arguments, adds each variant's Keras reference,
and prints the figures with their ratios and the memory goal.
"""

import argparse
import json

from run import CASES
from run import GOALS
from run import VARIANTS


def parser_for(description):
    """The common arguments: `--case`, `--variants`, `--output`."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--case", choices=sorted(CASES), default="default")
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help="Comma-separated subset of run.py's variants (references added).",
    )
    parser.add_argument("--output", help="Optional JSON path.")
    return parser


def variants_with_references(parser, variants):
    """The requested variants, each one's Keras reference put first."""
    names = variants.split(",")
    unknown = set(names) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants: {sorted(unknown)}")
    for name in list(names):
        reference = VARIANTS[name][2]
        if reference not in names:
            names.insert(0, reference)
    return names


def report(title, key, results, args):
    """Prints `results` (MiB per variant) against the goal; writes JSON."""
    print(title)
    print(f"{'variant':<36}{'MiB':>8}{'/ref':>8}  goal")
    table = {}
    for name, mib in results.items():
        label, kind, reference = VARIANTS[name]
        ratio = mib / results[reference]
        goal = ""
        if kind != "baseline":
            limit = GOALS["memory"][kind]
            goal = f"<={limit:.2f} " + ("ok" if ratio <= limit else "MISS")
        print(f"{label:<36}{mib:>8.1f}{ratio:>8.2f}  {goal}")
        table[name] = {key: mib, "vs_ref": ratio}
    if args.output:
        with open(args.output, "w") as f:
            shape = CASES[args.case]
            json.dump({"case": args.case, "shape": shape, "memory": table}, f)
