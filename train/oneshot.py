"""N-way K-shot one-shot evaluation, Lake et al. style, plus Lake's published run folders.

A trial shows ``n_way`` classes (from one alphabet when ``within_group``), ``k_shot`` support drawings
each, and one query drawing of one of them; the model is right when the query is most similar to its
own class. Like Lake et al. (2015), support and query come from different drawers when drawers are
known (Omniglot file names ``<image>_<drawer>.png``), so a model cannot win by matching handwriting.

Embed once, score many: every item is embedded once, then all (query, support) pairs are scored in
batches through ``score_fn``, which is the model's head or distance (the same one the runtime uses).

Lake's run folders (``all_runs.zip`` in github.com/brendenlake/omniglot, python/one-shot-classification)::

    DIR/run01/training/class01.png ... class20.png   one drawing per class
    DIR/run01/test/item01.png ... item20.png         one query per class, another drawer
    DIR/run01/class_labels.txt                       "run01/test/item01.png run01/training/class12.png"

In Lake's published files the paths in ``class_labels.txt`` are relative to DIR (his demo runs from
inside ``all_runs``; other loaders join them onto the ``all_runs`` folder). Some copies rewrite them
relative to the run folder (``test/item01.png training/class12.png``); ``read_lake_runs`` accepts both,
trying DIR first, and ``write_lake_runs`` writes Lake's form.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from runtime.fileio import atomic_dir
from runtime.preprocess import IMAGE_SUFFIXES, Preprocessing, normalize_image, preprocess_batch, to_color
from runtime.scoring import ScoreSpec

ScoreFn = Callable[[np.ndarray, np.ndarray], Any]
EmbedFn = Callable[[np.ndarray], Any]

_DRAWER_RE = re.compile(r"^\d+_(\d+)\.[A-Za-z0-9]+$")
_RUN_RE = re.compile(r"^run\d+$")
_PAIR_CHUNK = 4096  # (query, support) pairs scored per score_fn call: bounds memory for 4608-d VGG embeddings
_Z95 = 1.959963984540054


class ImageSetLike(Protocol):
    """What ``write_lake_runs`` needs from ``train.data.ImageSet``."""

    items: list[str]
    labels: np.ndarray
    classes: list[str]
    class_groups: np.ndarray
    groups: list[str]

    def read(self, i: int) -> np.ndarray: ...

    def __len__(self) -> int: ...


@dataclass(frozen=True)
class Trial:
    """One N-way K-shot trial; all numbers are item indices or class ids of the evaluated set."""

    support: np.ndarray  # (n_way * k_shot,) item indices, class-major
    support_labels: np.ndarray  # (n_way * k_shot,) class id of each support item
    query: int  # item index
    answer: int  # class id of the query
    group: int = -1  # the group (alphabet) the classes came from, -1 when drawn across groups


@dataclass(frozen=True)
class LakeRun:
    """One of Lake's run folders: query images, one image per candidate class, the right class per query."""

    name: str
    items: list[Path]  # test/itemNN.png, sorted
    classes: list[Path]  # training/classNN.png, sorted
    answers: np.ndarray  # index into ``classes`` for each of ``items``


def drawer_of(item_id: str) -> int | None:
    """Omniglot drawer number from an item id or path (``.../character01/0965_01.png`` -> 1), else None.

    Works for zip member ids (``archive.zip:images_evaluation/...``) and Windows paths too.
    """
    name = re.split(r"[/\\:]", str(item_id))[-1]
    m = _DRAWER_RE.match(name)
    return int(m.group(1)) if m else None


def wilson_interval(correct: float, n: int, z: float = _Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion: honest near 0 and 1 and for few trials, unlike p +- 2 se."""
    if n <= 0:
        return 0.0, 1.0
    p = correct / n
    denom = 1.0 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if correct <= 0 else max(0.0, center - half)  # exact ends, not 1 - 2e-16
    hi = 1.0 if correct >= n else min(1.0, center + half)
    return lo, hi


# --------------------------------------------------------------------------------------------------
# Sampling episodes


class _EpisodeSampler:
    """Draws n_way classes from one group (or all) with k_shot support items and one query candidate each."""

    def __init__(
        self,
        labels: Any,
        class_groups: Any,
        drawers: Any,
        n_way: int,
        k_shot: int,
        within_group: bool,
    ) -> None:
        if n_way < 2:
            raise ValueError(f"n_way {n_way}: need at least 2 classes per trial")
        if k_shot < 1:
            raise ValueError(f"k_shot {k_shot}: need at least 1 support item per class")
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        n_classes = int(labels.max()) + 1 if labels.size else 0
        groups = np.zeros(n_classes, np.int64) if class_groups is None else np.asarray(class_groups, np.int64)
        if groups.size < n_classes:
            raise ValueError(f"class_groups has {groups.size} entries but labels go up to class {n_classes - 1}")
        d = None if drawers is None else np.array([-1 if v is None else int(v) for v in drawers], np.int64)
        if d is not None and d.size != labels.size:
            raise ValueError(f"drawers has {d.size} entries for {labels.size} items")
        self.by_drawer = d is not None and bool(np.all(d >= 0))
        self.n_way, self.k_shot, self.within_group = n_way, k_shot, within_group

        # per class: drawer -> items (drawers known) or one list of items (-1 key)
        self.pools: dict[int, dict[int, np.ndarray]] = {}
        for c in range(n_classes):
            idx = np.flatnonzero(labels == c)
            if self.by_drawer:
                pool = {int(k): idx[d[idx] == k] for k in np.unique(d[idx])}
                usable = len(pool) >= k_shot + 1
            else:
                pool = {-1: idx}
                usable = idx.size >= k_shot + 1
            if usable:
                self.pools[c] = pool
        eligible = np.array(sorted(self.pools), np.int64)
        if within_group:
            buckets = {int(g): eligible[groups[eligible] == g] for g in np.unique(groups[eligible])}
        else:
            buckets = {-1: eligible}
        self.buckets = {g: cs for g, cs in buckets.items() if cs.size >= n_way}
        if not self.buckets:
            biggest = max((cs.size for cs in buckets.values()), default=0)
            need = f"{k_shot + 1} {'drawers' if self.by_drawer else 'items'} each"
            where = "any one group" if within_group else "the whole set"
            raise ValueError(
                f"{n_way}-way {k_shot}-shot trials need {n_way} classes with {need} in {where}; "
                f"the largest has {biggest}"
            )
        self.group_ids = np.array(sorted(self.buckets), np.int64)

    def sample(self, rng: np.random.Generator) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
        """-> (group, classes (n_way,), support items (n_way, k_shot), query candidates (n_way,))."""
        for _ in range(1000):
            g = int(rng.choice(self.group_ids))
            classes = rng.choice(self.buckets[g], size=self.n_way, replace=False)
            if not self.by_drawer:
                picks = [rng.choice(self.pools[int(c)][-1], size=self.k_shot + 1, replace=False) for c in classes]
                picks_arr = np.stack(picks)
                return g, classes, picks_arr[:, : self.k_shot], picks_arr[:, self.k_shot]
            common = set.intersection(*(set(self.pools[int(c)]) for c in classes))
            if len(common) < self.k_shot + 1:
                continue  # these classes share too few drawers; draw again
            chosen = rng.choice(sorted(common), size=self.k_shot + 1, replace=False)
            support_drawers, query_drawer = chosen[: self.k_shot], int(chosen[self.k_shot])
            support = np.array(
                [[rng.choice(self.pools[int(c)][int(k)]) for k in support_drawers] for c in classes], np.int64
            )
            queries = np.array([rng.choice(self.pools[int(c)][query_drawer]) for c in classes], np.int64)
            return g, classes, support, queries
        raise ValueError(f"could not find {self.n_way} classes sharing {self.k_shot + 1} drawers in 1000 draws")


def build_trials(
    labels: Any,
    class_groups: Any,
    drawers: Any,
    n_way: int = 20,
    k_shot: int = 1,
    n_trials: int = 400,
    within_group: bool = True,
    seed: int = 0,
) -> list[Trial]:
    """Seeded N-way K-shot trials over plain arrays (no images needed).

    labels: class id per item; class_groups: group (alphabet) per class, or None for one group;
    drawers: drawer per item (None/-1 entries, or drawers=None, when unknown). With drawers known the
    k_shot support drawings of every class come from the same k_shot drawers and the query from one
    more drawer; without, support and query are distinct random items of their class.
    """
    sampler = _EpisodeSampler(labels, class_groups, drawers, n_way, k_shot, within_group)
    rng = np.random.default_rng(seed)
    trials = []
    for _ in range(n_trials):
        g, classes, support, queries = sampler.sample(rng)
        q = int(rng.integers(sampler.n_way))
        trials.append(
            Trial(
                support=support.reshape(-1),
                support_labels=np.repeat(classes, sampler.k_shot),
                query=int(queries[q]),
                answer=int(classes[q]),
                group=g,
            )
        )
    return trials


def involved_items(trials: Sequence[Trial]) -> np.ndarray:
    """Sorted unique item indices the trials use: embed exactly these, once."""
    if not trials:
        return np.zeros(0, np.int64)
    return np.unique(np.concatenate([np.append(t.support, t.query) for t in trials]))


# --------------------------------------------------------------------------------------------------
# Scoring


def _scores(score_fn: ScoreFn, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Call score_fn on N pairs and insist on N scores back."""
    out = np.asarray(score_fn(a, b), dtype=np.float64)
    if out.size != a.shape[0]:
        raise ValueError(f"score_fn returned {out.size} scores for {a.shape[0]} pairs (shape {out.shape})")
    return out.reshape(-1)


def _credit(class_similarity: np.ndarray, answer_pos: int) -> tuple[float, bool]:
    """1 if the answer is the unique best, 1/t if it ties t ways for best (the expected score of a random
    tie-break: saturated sigmoids give exact ties, which must not count as wins), else 0."""
    best = class_similarity.max()
    winners = np.flatnonzero(class_similarity == best)
    tie = winners.size > 1
    return (1.0 / winners.size if answer_pos in winners else 0.0), tie


def _summary(credits: Sequence[float], ties: int, **extra: Any) -> dict[str, Any]:
    n = len(credits)
    correct = float(np.sum(credits)) if n else 0.0
    lo, hi = wilson_interval(correct, n)
    accuracy = correct / n if n else 0.0
    return {"accuracy": accuracy, "correct": correct, "trials": n, **extra, "ci95": [lo, hi], "ties": int(ties)}


def oneshot_accuracy(
    trials: Sequence[Trial],
    embeddings: np.ndarray | Mapping[int, np.ndarray],
    score_fn: ScoreFn,
    spec: ScoreSpec,
) -> dict[str, Any]:
    """Accuracy over trials: the query goes to the class with the highest mean ``spec.similarity``.

    embeddings: per-item embeddings indexed by item index (an array over all items, or a mapping
    holding at least ``involved_items(trials)``). score_fn(emb_a, emb_b) scores N pairs at once.
    Returns accuracy, correct, trials, n_way, k_shot, ci95 (Wilson, 95 %) and ties.
    """
    if not trials:
        raise ValueError("no trials to evaluate")
    if isinstance(embeddings, Mapping):
        keys = involved_items(trials)
        missing = [int(k) for k in keys if int(k) not in embeddings]
        if missing:
            raise ValueError(f"embeddings missing for {len(missing)} items, e.g. {missing[:5]}")
        row = {int(k): i for i, k in enumerate(keys)}
        table = np.stack([np.asarray(embeddings[int(k)]) for k in keys])
    else:
        table, row = np.asarray(embeddings), None

    def rows(idx: np.ndarray) -> np.ndarray:
        return table[idx] if row is None else table[[row[int(i)] for i in idx]]

    n_support = trials[0].support.size
    k_shot = int(n_support // np.unique(trials[0].support_labels).size)
    per_chunk = max(1, _PAIR_CHUNK // n_support)
    credits: list[float] = []
    ties = 0
    for start in range(0, len(trials), per_chunk):
        chunk = trials[start : start + per_chunk]
        support = np.concatenate([t.support for t in chunk])
        query = np.concatenate([np.full(t.support.size, t.query) for t in chunk])
        sim = spec.similarity(_scores(score_fn, rows(query), rows(support)))
        pos = 0
        for t in chunk:
            s = sim[pos : pos + t.support.size]
            pos += t.support.size
            classes, inverse = np.unique(t.support_labels, return_inverse=True)
            per_class = np.bincount(inverse, weights=s) / np.bincount(inverse)
            credit, tie = _credit(per_class, int(np.flatnonzero(classes == t.answer)[0]))
            credits.append(credit)
            ties += tie
    n_way = int(np.unique(trials[0].support_labels).size)
    return _summary(credits, ties, n_way=n_way, k_shot=k_shot)


# --------------------------------------------------------------------------------------------------
# Lake's run folders


def _resolve(root: Path, run_dir: Path, rel: str, where: str) -> Path:
    """A class_labels.txt path: relative to DIR (Lake's files) or to the run folder (some copies)."""
    candidates = [root / rel, run_dir / rel]
    for c in candidates:
        if c.is_file():
            return c
    raise FileNotFoundError(f"{where}: {rel!r} not found (looked for {candidates[0]} and {candidates[1]})")


def read_lake_runs(directory: str | Path) -> list[LakeRun]:
    """Read Lake-style one-shot runs (``runNN/`` folders with ``class_labels.txt``) from a directory."""
    root = Path(directory)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such directory (expected Lake's one-shot runs: run01/, run02/, ...)")
    run_dirs = sorted(p for p in root.iterdir() if p.is_dir() and _RUN_RE.match(p.name))
    if not run_dirs:
        raise ValueError(f"{root}: no runNN folders (expected run01/class_labels.txt, ...)")
    runs = []
    for run_dir in run_dirs:
        labels_file = run_dir / "class_labels.txt"
        if not labels_file.is_file():
            raise FileNotFoundError(f"{labels_file}: missing (every run folder needs its class_labels.txt)")
        pairs: dict[Path, Path] = {}
        for n, line in enumerate(labels_file.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            fields = line.split()
            where = f"{labels_file}:{n}"
            if len(fields) != 2:
                raise ValueError(
                    f"{where}: expected two paths 'run01/test/item01.png run01/training/class12.png', got {line!r}"
                )
            item = _resolve(root, run_dir, fields[0], where).resolve()
            cls = _resolve(root, run_dir, fields[1], where).resolve()
            if item in pairs:
                raise ValueError(f"{where}: test image {fields[0]!r} is listed twice")
            pairs[item] = cls
        if not pairs:
            raise ValueError(f"{labels_file}: empty, expected one 'test training' line per test image")
        training = run_dir / "training"
        listed = (
            {p.resolve() for p in training.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
            if training.is_dir()
            else set()
        )
        classes = sorted(listed | set(pairs.values()))
        if len(classes) < 2:
            raise ValueError(f"{run_dir}: only {len(classes)} class image(s), a run needs at least 2 to choose from")
        items = sorted(pairs)
        position = {c: i for i, c in enumerate(classes)}
        answers = np.array([position[pairs[i]] for i in items], np.int64)
        runs.append(LakeRun(name=run_dir.name, items=items, classes=classes, answers=answers))
    return runs


def _gray8(img: np.ndarray, name: str) -> np.ndarray:
    """Any image an ImageSet returns -> 8-bit single-channel (what Lake's runs hold, as 1-bit)."""
    return to_color(normalize_image(img, name=name), "gray")[:, :, 0]


def _write_png(path: Path, img: np.ndarray) -> None:
    if not cv2.imwrite(str(path), img):
        raise OSError(f"{path}: OpenCV could not write the PNG")


def write_lake_runs(
    imageset: ImageSetLike,
    out_dir: str | Path,
    n_runs: int = 20,
    n_way: int = 20,
    seed: int = 0,
    within_group: bool = True,
    overwrite: bool = False,
) -> Path:
    """Write Lake-style runs from an ImageSet (e.g. Omniglot images_evaluation); returns ``out_dir``.

    Each run: n_way classes (one group when ``within_group``), training drawings from one drawer and
    test drawings from another (when the item names carry drawers), test order shuffled. Images are
    8-bit greyscale PNGs; ``runs.json`` beside the runs records seed and source items. Written into a
    temporary folder and renamed into place, so a half-written set never appears.
    """
    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out}: already exists (pass overwrite=True to replace it)")
    drawers = [drawer_of(i) for i in imageset.items]
    sampler = _EpisodeSampler(imageset.labels, imageset.class_groups, drawers, n_way, 1, within_group)
    rng = np.random.default_rng(seed)
    record: dict[str, Any] = {"seed": seed, "n_way": n_way, "within_group": within_group, "runs": []}
    with atomic_dir(out) as tmp:
        for r in range(1, n_runs + 1):
            name = f"run{r:02d}"
            g, classes, support, queries = sampler.sample(rng)
            order = rng.permutation(n_way)  # test item j shows class order[j]
            for sub in ("training", "test"):
                (tmp / name / sub).mkdir(parents=True)
            lines = []
            for c in range(n_way):
                i = int(support[c, 0])
                _write_png(
                    tmp / name / "training" / f"class{c + 1:02d}.png", _gray8(imageset.read(i), imageset.items[i])
                )
            for j, c in enumerate(order):
                i = int(queries[c])
                _write_png(tmp / name / "test" / f"item{j + 1:02d}.png", _gray8(imageset.read(i), imageset.items[i]))
                lines.append(f"{name}/test/item{j + 1:02d}.png {name}/training/class{c + 1:02d}.png\n")
            (tmp / name / "class_labels.txt").write_text("".join(lines), encoding="utf-8")
            record["runs"].append(
                {
                    "name": name,
                    "group": imageset.groups[g] if g >= 0 else None,
                    "classes": [imageset.classes[int(c)] for c in classes],
                    "training": [imageset.items[int(i)] for i in support[:, 0]],
                    "test": [imageset.items[int(queries[c])] for c in order],
                }
            )
        (tmp / "runs.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
    return out


def lake_runs_accuracy(
    runs: Sequence[LakeRun],
    embed_fn: EmbedFn,
    score_fn: ScoreFn,
    spec: ScoreSpec,
    preprocessing: Preprocessing,
) -> dict[str, Any]:
    """Accuracy on Lake-style runs: each test image goes to the most similar training image of its run.

    Images go through ``runtime.preprocess`` exactly as at deployment (1-bit and 8-bit PNGs read alike);
    ``embed_fn`` maps an NxHxWxC float32 batch to N embeddings.
    Returns accuracy, trials, runs (per-run accuracy), ci95 and ties.
    """
    if not runs:
        raise ValueError("no runs to evaluate")
    credits: list[float] = []
    per_run: list[float] = []
    ties = 0
    for run in runs:
        batch = preprocess_batch([str(p) for p in [*run.classes, *run.items]], preprocessing)
        emb = np.asarray(embed_fn(batch))
        if emb.shape[0] != batch.shape[0]:
            raise ValueError(f"{run.name}: embed_fn returned {emb.shape[0]} embeddings for {batch.shape[0]} images")
        n_cls, n_items = len(run.classes), len(run.items)
        cls_emb, item_emb = emb[:n_cls], emb[n_cls:]
        a = np.repeat(item_emb, n_cls, axis=0)
        b = np.tile(cls_emb, (n_items,) + (1,) * (cls_emb.ndim - 1))
        sim = spec.similarity(_scores(score_fn, a, b)).reshape(n_items, n_cls)
        run_credits = []
        for k in range(n_items):
            credit, tie = _credit(sim[k], int(run.answers[k]))
            run_credits.append(credit)
            ties += tie
        credits.extend(run_credits)
        per_run.append(float(np.mean(run_credits)))
    return _summary(credits, ties, runs=per_run)
