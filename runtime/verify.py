"""``python -m runtime.verify``: are two images the same identity? One pair, one answer, with what the score means.

Exit codes (for scripts; the decision itself is in the output, not the exit code):
  0  ran: the score and the decision were printed (match or not)
  1  --parity: the backend fails parity against the bundle's Keras reference (the table says which check)
  2  bad input: an unreadable or corrupt image, a missing or tampered bundle, bad arguments
     (one line on stderr naming the file, no traceback)
  3  the backend asked for cannot run here, or no backend passes parity for the bundle (the line says why)
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from runtime import console
from runtime.backends.base import PRECISIONS, backend_names
from runtime.console import BOUNDARY_EXIT_CODES, CliError, cli_warnings, load_verifier, one_line, run_cli
from runtime.extras import explain_missing_extras

EXIT_OK, EXIT_PARITY, EXIT_INPUT, EXIT_BACKEND = 0, 1, console.EXIT_INPUT, console.EXIT_BACKEND

EXAMPLES = """
examples:
  python -m runtime.verify --bundle runs/demo/bundles/demo a.png b.png
  python -m runtime.verify --bundle bundles/omniglot_vgg a.png b.png --json       # one JSON object, for scripts
  python -m runtime.verify --bundle bundles/demo a.png b.png --parity             # + re-check the Keras reference
  python -m runtime.verify --bundle bundles/demo --parity                         # only the parity check
  python -m runtime.verify --bundle bundles/demo a.png b.png --backend onnxruntime --threads 2
  python -m runtime.verify --bundle bundles/vgg a.png b.png --backend openvino --precision bf16

backend auto takes the fastest backend present that passes parity for the bundle
(TensorRT plan for this GPU > ONNX Runtime GPU > OpenVINO > ONNX Runtime CPU) and says why.

exit codes:
  0  ran (the decision is in the output)
  1  --parity failed
  2  bad input (image, bundle, arguments: one line on stderr naming the file)
  3  the backend cannot run here
{boundary}
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m runtime.verify",
        description="Verify a pair of images with a siamese-edge bundle: prints the score, what it means, "
        "the threshold and the decision, and which backend ran it and why.",
        epilog=EXAMPLES.format(boundary=BOUNDARY_EXIT_CODES),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--bundle", required=True, metavar="DIR", help="bundle folder written by python -m export.build")
    p.add_argument("images", nargs="*", metavar="IMAGE", help="the two images to compare (A B)")
    p.add_argument(
        "--backend",
        default="auto",
        choices=backend_names(),
        help="default auto: the fastest present that passes parity for the bundle",
    )
    p.add_argument("--precision", choices=PRECISIONS, help="default: the fastest that passes parity on the backend")
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads for inference (default: the backend's)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument(
        "--parity",
        action="store_true",
        help="re-run the bundle's reference.npz on the chosen backend and print the parity table (exit 1 on failure)",
    )
    p.add_argument("--debug", action="store_true", help="print the traceback of an unexpected error")
    return p


def run(args: argparse.Namespace) -> tuple[int, dict[str, Any], list[str]]:
    """Do the work; (exit code, JSON-able result, text lines)."""
    from runtime.bundle.layout import BundleError
    from runtime.parity import format_table
    from runtime.preprocess import ImageReadError, read_image_bytes

    if len(args.images) not in (0, 2) or (not args.images and not args.parity):
        raise CliError(EXIT_INPUT, f"expected two images A B (got {len(args.images)}); or --parity alone")
    if args.threads is not None and args.threads < 1:
        raise CliError(EXIT_INPUT, f"--threads {args.threads}: expected a positive integer")
    for img in args.images:  # before loading the bundle: a typo should not wait for a model
        try:
            read_image_bytes(img)
        except ImageReadError as e:
            raise CliError(EXIT_INPUT, str(e)) from None
    verifier = load_verifier(args.bundle, args.backend, args.precision, args.threads)
    info = verifier.info()
    out: dict[str, Any] = {
        "bundle": info["bundle"],
        "bundle_dir": info["bundle_dir"],
        "backend": {
            k: info.get(k) for k in ("backend", "variant", "provider", "precision", "device", "parity", "reason")
        },
    }
    lines = [
        f"bundle:    {info['bundle']} ({info['bundle_dir']})",
        f"backend:   {info['variant']} {info['precision']} ({info['provider']} on {info['device']})",
        f"why:       {info['reason']}",
    ]
    code = EXIT_OK
    if args.images:
        a, b = args.images
        try:
            r = verifier.verify(a, b)
        except ImageReadError as e:
            raise CliError(EXIT_INPUT, str(e)) from None
        out.update({"a": a, "b": b, **r.to_dict()})
        cmp = ">=" if r.same_when == "high" else "<="
        lines += [
            f"pair:      {a}  vs  {b}",
            f"score:     {r.score:.6g}  ({r.kind}: {r.meaning})",
            f"threshold: {r.threshold:.6g}  (match when score {cmp} threshold; {r.threshold_source})",
            f"decision:  {'MATCH' if r.match else 'NO MATCH'}",
        ]
    if args.parity:
        try:
            result = verifier.check_parity()
        except BundleError as e:
            raise CliError(EXIT_INPUT, str(e)) from None
        out["parity"] = result.to_dict()
        lines += ["", format_table([result]), f"parity:    {'PASSED' if result.passed else 'FAILED'}"]
        if not result.passed:
            code = EXIT_PARITY
    return code, out, lines


@explain_missing_extras()
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        with cli_warnings():
            try:
                code, out, lines = run(args)
            except CliError as e:
                print(f"error: {one_line(e)}", file=sys.stderr)
                return e.code
            except ValueError as e:  # bad arguments the library refused
                print(f"error: {one_line(e)}", file=sys.stderr)
                return EXIT_INPUT
        if args.json:
            print(json.dumps(out, default=str))
        else:
            print("\n".join(lines))
        return code

    return run_cli(body, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
