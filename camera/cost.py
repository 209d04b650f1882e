"""Where a camera frame's time goes, one stage at a time on one thread: decoding, cropping and preprocessing, and
the network call with its decision, at batch 1 (one stream a call) and at batch N (N streams in one call).

Batching N streams shares only the network call: every stream's frames are still decoded, cropped and preprocessed
one by one. So, on equal cores, N streams in one process can be at most ``(decode + prepare + call_1) /
(decode + prepare)`` times as fast as N processes (the ``free_call`` ceiling: a network call that cost nothing),
and the split predicts ``(decode + prepare + call_1) / (decode + prepare + call_N)`` (``expected``). ``camera.bench``
measures it beside the streams, in the same run, so a target can be set against what the stages allow.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from camera.crop import center_square, crop
from camera.matcher import Matcher
from camera.sources import open_source, parse_source
from runtime.timing import time_calls


def decode_frames(clip: str | Path, limit: int) -> tuple[list[np.ndarray], float]:
    """The clip's first ``limit`` frames as camera reads them (``camera.sources``), and the ms each took."""
    source = open_source(parse_source(str(clip)))
    frames: list[np.ndarray] = []
    t0 = time.perf_counter()
    try:
        while len(frames) < limit:
            image = source.read()
            if image is None:
                break
            frames.append(image)
    finally:
        source.close()
    if not frames:
        raise ValueError(f"{clip}: no frame could be decoded")
    return frames, 1000.0 * (time.perf_counter() - t0) / len(frames)


def _ms_per_frame(fn, items: list, frames_each: int = 1) -> tuple[float, list]:
    """Mean ms per frame of ``fn`` over ``items`` (one warm-up call: first-call allocations are not a frame's cost),
    and what each call returned."""
    out: list = []
    seconds = time_calls(lambda i: out.append(fn(items[i])), len(items), warmup=0)
    warm = seconds[1:] if len(seconds) > 1 else seconds
    return 1000.0 * float(warm.mean()) / frames_each, out


def cost_split(matcher: Matcher, clip: str | Path, streams: int, limit: int = 240) -> dict[str, Any]:
    """ms per frame of each stage on the center crop of ``clip`` (as ``camera.bench`` runs it), and the ratios
    batching ``streams`` streams can reach."""
    frames, decode = decode_frames(clip, limit)
    region = center_square(frames[0].shape)
    prepare, inputs = _ms_per_frame(lambda f: matcher.preprocess([crop(f, region)]), frames)
    call_1, _ = _ms_per_frame(matcher.decide_preprocessed, inputs)
    groups = [np.concatenate(inputs[i : i + streams]) for i in range(0, len(inputs) - streams + 1, streams)]
    call_n, _ = _ms_per_frame(matcher.decide_preprocessed, groups, streams)
    per_stream = decode + prepare
    return {
        "frames": len(frames),
        "streams": streams,
        "ms_per_frame": {
            "decode": round(decode, 3),
            "prepare": round(prepare, 3),
            "call_batch_1": round(call_1, 3),
            f"call_batch_{streams}": round(call_n, 3),
        },
        "network_share": round(call_1 / (per_stream + call_1), 3),
        "ratio": {
            "expected": round((per_stream + call_1) / (per_stream + call_n), 2),
            "free_call": round((per_stream + call_1) / per_stream, 2),
        },
    }
