"""Model cards: what a trained model is, how it was made, how good it is and how to read its scores."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Any

from runtime import machine
from runtime.fileio import write_json_atomic, write_text_atomic

CARD_NAME = "model_card.json"
TRACKED_PACKAGES = ("siamese-edge", "tensorflow", "keras", "numpy", "opencv-python-headless", "scikit-learn", "tf2onnx")


class CardError(ValueError):
    """A model card that exists but cannot be read."""


def read_card(model_path: str | Path, warning: type[Warning] = UserWarning) -> dict[str, Any] | None:
    """The model card beside ``model_path`` if there is one and it describes that file (else None, with a warning
    when it names another file)."""
    path = Path(model_path)
    card_path = (path if path.is_dir() else path.parent) / CARD_NAME
    if not card_path.is_file():
        return None
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CardError(f"{card_path}: cannot read the model card ({e})") from None
    if not isinstance(card, dict):
        raise CardError(f"{card_path}: expected a JSON object")
    named = card.get("model")
    if named is not None and not path.is_dir() and Path(str(named)).name != path.name:
        warnings.warn(f"{card_path} describes {named!r}, not {path.name!r}; ignoring it", warning, stacklevel=3)
        return None
    return card


def versions() -> dict[str, str]:
    """Python's and each tracked package's version, ``"not installed"`` for one that is not."""
    return machine.versions(TRACKED_PACKAGES, missing="not installed")


def command_line(argv: list[str] | None = None) -> str:
    argv = sys.argv if argv is None else argv
    prog = "python -m train" if argv and argv[0].endswith(("__main__.py", "cli.py")) else Path(argv[0]).name
    return " ".join([prog, *argv[1:]])


def write_card(out_dir: str | Path, card: dict[str, Any]) -> Path:
    """Write model_card.json and a readable model_card.md beside it (both atomically)."""
    out = Path(out_dir)
    path = write_json_atomic(out / CARD_NAME, card)
    write_text_atomic(out / "model_card.md", render_markdown(card))
    return path


def render_markdown(card: dict[str, Any]) -> str:
    cfg = card.get("config", {})
    score = cfg.get("score", {})
    data = card.get("data", {})
    lines = [
        f"# {card.get('model', 'model')}: {cfg.get('arch', '?')}",
        "",
        f"- Command: `{card.get('command', '?')}`",
        f"- Data: {data.get('name', '?')} ({data.get('source', '?')}), sha256 `{data.get('sha256', '?')}`",
        f"- Training time: {card.get('training', {}).get('seconds', 0) / 60:.1f} min on {card.get('machine', '?')}",
        f"- Input: {cfg.get('preprocessing', {})}",
        f"- Score: {score.get('kind')} (same when {score.get('same_when')}), "
        f"threshold {score.get('threshold')} ({score.get('threshold_source')})",
        f"- Labels: {cfg.get('label_convention', '?')}, loss {cfg.get('loss')}",
        "",
        "## Metrics",
        "",
    ]
    for name, block in card.get("metrics", {}).items():
        lines.append(f"### {name}")
        lines.append("")
        if isinstance(block, dict):
            for k, v in block.items():
                if not isinstance(v, (dict, list)):
                    lines.append(f"- {k}: {v}")
        lines.append("")
    lines += _evaluation_markdown(card.get("evaluation"))
    plots = card.get("plots", {})
    if plots:
        lines += ["## Plots", ""] + [f"![{k}]({v})" for k, v in plots.items()] + [""]
    lines += ["## Versions", ""] + [f"- {k}: {v}" for k, v in card.get("versions", {}).items()] + [""]
    return "\n".join(lines)


def _evaluation_markdown(evaluation: dict[str, Any] | None) -> list[str]:
    """The published evaluation (``python -m train.publish``): each figure with its trials, CI and command."""
    if not evaluation:
        return []
    lines = ["## Evaluation", ""]
    data = evaluation.get("data", {})
    if data:
        lines += [
            f"On {data.get('name', '?')}: {data.get('classes', '?')} classes, {data.get('groups', '?')} groups.",
            "",
        ]
    for key, block in evaluation.items():
        if not isinstance(block, dict) or "command" not in block:
            continue
        if "accuracy" in block:
            lo, hi = block.get("ci95", (float("nan"), float("nan")))
            figure = f"accuracy {block['accuracy']:.2%} over {block.get('trials')} trials (95% CI {lo:.1%}-{hi:.1%})"
        else:
            figure = f"ROC AUC {block.get('auc', float('nan')):.4f}, EER {block.get('eer', float('nan')):.2%}"
        lines += [f"- **{key}**: {figure}", f"  `{block['command']}`"]
    curve = evaluation.get("accuracy_vs_minutes") or []
    if curve:
        lines += ["", "| epoch | training minutes | accuracy |", "|---|---|---|"]
        lines += [f"| {p.get('epoch')} | {p.get('wall_minutes', 0):.1f} | {p.get('accuracy', 0):.2%} |" for p in curve]
    if evaluation.get("note"):
        lines += ["", evaluation["note"]]
    return lines + [""]
