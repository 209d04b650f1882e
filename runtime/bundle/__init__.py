"""The bundle: one folder per deployed model. This package is the only code that reads or writes its format.

    layout         the names: files, tensors, FP16 metadata keys, SCHEMA_VERSION (from manifest.schema.json)
    manifest       manifest.json, typed section by section, checked against manifest.schema.json
    files          the sha256 of every file, paths kept inside the bundle
    reference      reference.npz (the Keras reference) and its raw copy for the C++ runtime
    parity_report  parity.json (rows are runtime.parity.ParityResult)

``Bundle`` ties them to one folder: what the runtime opens, and how a TensorRT plan or a new graph is added to a
bundle that already exists (every file hashed again, the manifest rewritten in one atomic replace). The exporter
writes a new bundle through ``manifest.write_manifest`` on its staging folder.

    from runtime.bundle import Bundle
    b = Bundle.open("bundles/demo")          # every file's sha256 checked
    b.manifest.score, b.reference().scores, b.parity().passed
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from runtime.bundle.files import FileEntry, inside
from runtime.bundle.layout import MANIFEST_NAME, REFERENCE_NPZ, BundleError
from runtime.bundle.manifest import Manifest, load_manifest, write_manifest
from runtime.bundle.parity_report import ParityReport, read_report
from runtime.bundle.reference import Reference

GRAPH_PRECISIONS = ("fp16", "int8")  # the reduced-precision embedding graphs a bundle can hold beside the FP32 one


@dataclass(frozen=True)
class Bundle:
    """A bundle folder and its manifest (read and hash-checked by ``open``)."""

    root: Path
    manifest: Manifest

    @classmethod
    def open(cls, path: str | Path, verify: bool = True) -> Bundle:
        root = Path(path)
        return cls(root, load_manifest(root, verify=verify))

    def path(self, name: str) -> Path:
        """The path of one of the bundle's files (refusing names that leave the bundle)."""
        return self.root / inside(name, self.root / MANIFEST_NAME)

    def reference(self) -> Reference:
        """The Keras reference (BundleError naming the file when it is missing or not one)."""
        name = self.manifest.reference.file if self.manifest.reference else REFERENCE_NPZ
        return Reference.load(self.path(name))

    def parity(self) -> ParityReport | None:
        """The export's parity report, or None when the bundle has none."""
        return read_report(self.path(self.manifest.parity_file))

    def add_engine(self, engine: dict[str, Any], files: list[str]) -> Bundle:
        """Record a TensorRT plan built after export: ``engine`` (its sidecar entry) under ``engines``, replacing one
        for the same file, and ``files`` (the plan and its sidecar, inside the bundle) hashed under ``files``."""
        engines = [e for e in self.manifest.engines if e.get("file") != engine["file"]] + [dict(engine)]
        return self._rewrite(replace(self.manifest, engines=engines), files)

    def add_graph(self, precision: str, file: str) -> Bundle:
        """Record a reduced-precision embedding graph written into the bundle after export (e.g. ``fp16``)."""
        if precision not in GRAPH_PRECISIONS:
            raise ValueError(f"precision {precision!r}: a bundle holds embedding graphs for {GRAPH_PRECISIONS}")
        embedding = replace(self.manifest.embedding, **{f"{precision}_file": file})
        return self._rewrite(replace(self.manifest, embedding=embedding), [file])

    def _rewrite(self, manifest: Manifest, added: list[str]) -> Bundle:
        """The manifest with ``added`` hashed from their bytes now, the other entries as they were (each file's
        hash was checked when the bundle was opened), written in one atomic replace."""
        where = self.root / MANIFEST_NAME
        files = dict(self.manifest.files)
        for name in added:
            try:
                p = self.root / inside(name, where)
            except BundleError:
                raise BundleError(f"{name}: a file added to a bundle must lie inside it ({self.root})") from None
            if not p.is_file():
                raise BundleError(f"{p}: no such file to add to the bundle")
            files[name] = FileEntry.of(p)
        written = write_manifest(self.root, replace(manifest, files=files), relist=False)
        return Bundle(self.root, written)
