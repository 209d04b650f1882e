"""``python -m train.data``: fetch Omniglot into the cache, or describe any dataset spec."""

from __future__ import annotations

import argparse
import json
import sys

from runtime.console import one_line, run_cli
from runtime.extras import explain_missing_extras
from train.arguments import add_debug, exit_codes
from train.data.errors import DatasetError
from train.data.omniglot import SPLITS, cache_dir, fetch_omniglot
from train.data.opener import open_dataset


@explain_missing_extras("train")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m train.data",
        description=__doc__,
        epilog=exit_codes(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_debug(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    dl = sub.add_parser("download", help="download the official Omniglot zips into the cache and check them")
    dl.add_argument("--split", choices=SPLITS, nargs="+", default=list(SPLITS))
    dl.add_argument("--cache", default=None, help=f"cache folder (default {cache_dir()}, or $SIAMESE_EDGE_CACHE)")
    dl.add_argument("--extract", action="store_true", help="also extract the zips (reading works without)")
    info = sub.add_parser("info", help="open a dataset and print its description as JSON")
    info.add_argument("data", help="'digits', 'omniglot', a .zip, a .csv of pairs or a folder")
    info.add_argument("--split", choices=SPLITS, default="background")
    args = parser.parse_args(argv)
    return run_cli(lambda: _run(args), debug=args.debug)


def _run(args: argparse.Namespace) -> int:
    try:
        if args.command == "download":
            for split in args.split:
                print(fetch_omniglot(split, cache=args.cache, extract=args.extract))
        else:
            print(json.dumps(open_dataset(args.data, split=args.split).describe(), indent=2))
    except DatasetError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
