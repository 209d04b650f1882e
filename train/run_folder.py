"""Where a training run writes, so that ``--out`` always holds one whole run: the old finished one or the new one.

A finished run is a folder with ``model_card.json`` (written last). An interrupted run is a folder with
``checkpoints/backup`` (Keras' BackupAndRestore state, removed when fit ends) and no card of its own. A run
that replaces a finished one (``--force``) trains in a hidden sibling, ``.<name>.training``, which becomes
``--out`` with one rename when it has finished; until then the old run stays whole, and an interrupted
replacement stays in the sibling for ``--resume``. Under ``--strategy multiworker`` the chief alone locks,
prepares and publishes ``--out``; every other worker trains in a temporary folder and, to resume, starts from a
copy of the chief's backup (``pending``, ``train.distributed.worker_folder``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from runtime.fileio import check_replaceable, check_writable_dir, folder_lock, replace_dir
from train.model_card import CARD_NAME

log = logging.getLogger("train")

RUN_MARKERS = (CARD_NAME, "model.keras", "history.csv")  # files only a training run writes


@dataclass(frozen=True)
class RunFolder:
    out: Path  # where the finished run is published
    work: Path  # where this run writes: ``out`` itself, or the hidden sibling while a finished run stays in out
    resuming: bool  # continuing an interrupted run (its history is appended to)

    @property
    def backup(self) -> Path:
        return self.work / "checkpoints" / "backup"

    def publish(self) -> None:
        """Make the finished work folder ``out`` (one rename over the old run when it trained beside it)."""
        if self.work != self.out:
            replace_dir(self.work, self.out)


@contextlib.contextmanager
def locked(out: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on the ``--out`` folder for the whole run (flock on the folder itself, so no lock
    file is left): a second training run into the same folder is refused at once instead of mixing its
    checkpoints and history with this one's. FileExistsError naming the folder when another run holds it."""
    folder = check_writable_dir(out, "--out")
    lock = folder_lock(folder, exclusive=True, wait=False)
    try:
        lock.__enter__()
    except BlockingIOError:
        raise FileExistsError(
            f"{folder}: another training run is writing there now; wait for it or choose another --out"
        ) from None
    try:
        yield
    finally:
        lock.__exit__(None, None, None)


def sibling(out: Path) -> Path:
    return out.parent / f".{out.name}.training"


def interrupted(folder: Path) -> bool:
    return (folder / "checkpoints" / "backup").exists()


def finished(folder: Path) -> bool:
    return (folder / CARD_NAME).is_file() or (folder / "model.keras").is_file()


def pending(out: Path) -> Path | None:
    """The folder that holds ``--out``'s interrupted run (``out`` itself or its hidden sibling), or None."""
    side = sibling(Path(os.path.abspath(out)))  # also for --out . (whose sibling is beside it, not in it)
    return out if interrupted(out) else side if interrupted(side) else None


def prepare(out: str | Path, resume: bool, force: bool) -> RunFolder:
    """Decide where this run writes, refusing (FileExistsError) to lose a run: an interrupted one without
    --resume or --force, a finished one without --force; --resume with only a finished run there is an error
    too (nothing to continue, and starting over would overwrite it). OSError when the folder is not writable."""
    out = Path(out)
    side = sibling(Path(os.path.abspath(out)))
    interrupted_run = pending(out)
    if resume and interrupted_run is not None:
        published = out if interrupted_run == out else Path(os.path.abspath(out))
        return RunFolder(published, check_writable_dir(interrupted_run, "--out"), resuming=True)
    if interrupted_run is not None and not force:
        raise FileExistsError(
            f"{out} holds an interrupted run ({interrupted_run / 'checkpoints' / 'backup'}); pass --resume to continue it "
            "or --force to start over"
        )
    if resume and finished(out) and not force:
        raise FileExistsError(
            f"--resume: {out} holds a finished run ({out / CARD_NAME}) and no interrupted one to continue; "
            "pass --force (without --resume) to replace it, or choose another --out"
        )
    if finished(out) and not force:
        raise FileExistsError(f"{out / 'model.keras'} exists; pass --force to overwrite or choose another --out")
    if resume:
        log.warning("--resume: no interrupted run in %s, starting from scratch", out)
    if side.exists():
        shutil.rmtree(side)  # an interrupted replacement that --force starts over
    if finished(out):
        check_replaceable(out, RUN_MARKERS, "training run")
        return RunFolder(Path(os.path.abspath(out)), check_writable_dir(side, "--out"), resuming=False)
    if interrupted_run == out:
        shutil.rmtree(out / "checkpoints")  # --force over an interrupted run: start it over whole
        (out / "history.csv").unlink(missing_ok=True)
    return RunFolder(out, check_writable_dir(out, "--out"), resuming=False)
