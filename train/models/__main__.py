"""``python -m train.models``: list the registered architectures (the names ``python -m train --arch`` takes)."""

from __future__ import annotations

import argparse
import sys

from runtime.console import run_cli
from runtime.extras import explain_missing_extras
from train.arguments import add_debug, exit_codes


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m train.models",
        description="List the registered architectures: name, summary and source.",
        epilog=exit_codes(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_debug(p)
    return p


def list_architectures() -> int:
    from train.models import get_entry, list_models

    for name in list_models():
        e = get_entry(name)
        print(f"{name:18s} {e.summary}  [{e.source}]")
    return 0


@explain_missing_extras("train")
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(list_architectures, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
