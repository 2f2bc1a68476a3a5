"""Reading and checking published releases: ``manifest.json``, verification, listing.

``manifest.json`` (written last by :func:`minidr.release.writer.write_release`) holds the
caller's provenance (software version, config and its hash, inputs with checksums), the
release ``name``, its ``created`` time (UTC, ISO 8601) and ``outputs``: ``files`` (every
file but the manifest: ``path`` relative to the release, ``sha256``, ``size`` in bytes) and
``tables`` (per table: ``format``, ``path``, ``rows``, and for HATS catalogs
``partitions`` and ``max_order``).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .._io import sha256_file
from ..errors import ReleaseError

MANIFEST = "manifest.json"
SELF_HASH = "manifest_sha256"


def _canonical(doc: dict) -> str:
    return json.dumps(doc, sort_keys=True, indent=1, default=str) + "\n"


def manifest_text(doc: dict) -> str:
    """The bytes of ``manifest.json``: canonical JSON (sorted keys, indent 1) of ``doc`` plus
    ``manifest_sha256``, the sha256 of the canonical JSON of ``doc`` without that key."""
    body = {k: v for k, v in doc.items() if k != SELF_HASH}
    body = json.loads(_canonical(body))  # normalise types (tuples, paths) as they will be read back
    body[SELF_HASH] = hashlib.sha256(_canonical({k: v for k, v in body.items() if k != SELF_HASH}).encode()).hexdigest()
    return _canonical(body)


def _manifest_problem(path: Path) -> str | None:
    """Why ``manifest.json`` is not exactly as written (None when it is)."""
    text = path.read_text()
    doc = json.loads(text)
    if _canonical(doc) != text:
        return "changed file manifest.json: not in its canonical form"
    claimed = doc.pop(SELF_HASH, None)
    if claimed is None:
        return "changed file manifest.json: no manifest_sha256"
    if hashlib.sha256(_canonical(doc).encode()).hexdigest() != claimed:
        return "changed file manifest.json: its content does not match manifest_sha256"
    return None


def load_manifest(release_dir: Path) -> dict:
    """The parsed ``manifest.json`` of a release; :class:`ReleaseError` if absent or unreadable."""
    path = Path(release_dir) / MANIFEST
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise ReleaseError(f"{path}: no manifest (not a published release)") from None
    except (OSError, ValueError) as exc:
        raise ReleaseError(f"{path}: unreadable manifest: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("outputs"), dict):
        raise ReleaseError(f"{path}: manifest has no 'outputs' section")
    return doc


def verify_release(release_dir: Path) -> list[str]:
    """Re-check every file of a release against its manifest.

    Returns one message per changed, missing or unexpected file (sorted by path); an empty
    list means the release is exactly as published. ``manifest.json`` itself is checked
    through its ``manifest_sha256`` and canonical form, so any changed byte is reported.
    """
    release_dir = Path(release_dir)
    if not (release_dir / MANIFEST).is_file():
        raise ReleaseError(f"{release_dir / MANIFEST}: no manifest (not a published release)")
    try:
        doc = load_manifest(release_dir)
    except ReleaseError as exc:
        return [f"changed file {MANIFEST}: {str(exc).split(': ', 1)[-1]}"]
    expected = {e["path"]: e for e in doc["outputs"].get("files", [])}
    problems: list[tuple[str, str]] = []
    own = _manifest_problem(release_dir / MANIFEST)
    if own:
        problems.append((MANIFEST, own))
    for rel, entry in expected.items():
        path = release_dir / rel
        if not path.is_file():
            problems.append((rel, f"missing file {rel}"))
            continue
        size = path.stat().st_size
        if size != entry.get("size"):
            problems.append((rel, f"changed file {rel}: {size} bytes, manifest says {entry.get('size')}"))
            continue
        digest = sha256_file(path)
        if digest != entry.get("sha256"):
            problems.append((rel, f"changed file {rel}: sha256 {digest[:12]}..., manifest says {str(entry.get('sha256'))[:12]}..."))
    for path in release_dir.rglob("*"):
        if path.is_file() or path.is_symlink():
            rel = str(path.relative_to(release_dir)).replace(os.sep, "/")
            if rel != MANIFEST and rel not in expected:
                problems.append((rel, f"unexpected file {rel}"))
    return [msg for _, msg in sorted(problems)]


def list_releases(releases_dir: Path) -> list[str]:
    """Names of the published releases under ``releases_dir``, oldest first.

    A release is a directory holding ``manifest.json``; staging directories (names starting
    with ``.``) are ignored. Ordered by the manifest's ``created`` time, then name.
    """
    releases_dir = Path(releases_dir)
    if not releases_dir.is_dir():
        return []
    found = []
    for d in releases_dir.iterdir():
        if d.name.startswith(".") or not d.is_dir() or not (d / MANIFEST).is_file():
            continue
        try:
            created = str(load_manifest(d).get("created", ""))
        except ReleaseError:
            continue
        found.append((created, d.name))
    return [n for _, n in sorted(found)]


def catalog_partitions(catalog_dir: Path) -> list[tuple[int, int, str]]:
    """``(order, pixel, path)`` of every partition of a HATS catalog, from ``partition_info.csv``.

    ``path`` is relative to ``catalog_dir``; the list is sorted by order-29 range (so
    reading the files in this order gives rows sorted by ``_healpix_29``). Each partition
    holds the ``_healpix_29`` values ``[pixel << 2*(29-order), (pixel+1) << 2*(29-order))``.
    """
    path = Path(catalog_dir) / "partition_info.csv"
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise ReleaseError(f"{path}: missing (not a HATS catalog)") from None
    if not lines or lines[0].replace(" ", "") != "Norder,Npix":
        raise ReleaseError(f"{path}: expected the header 'Norder,Npix'")
    out = []
    for i, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            order, pixel = (int(v) for v in line.split(","))
        except ValueError:
            raise ReleaseError(f"{path}: line {i}: expected 'Norder,Npix' integers") from None
        rel = f"dataset/Norder={order}/Dir={(pixel // 10_000) * 10_000}/Npix={pixel}.parquet"
        out.append((order, pixel, rel))
    out.sort(key=lambda t: t[1] << (2 * (29 - t[0])))
    return out


def read_properties(catalog_dir: Path) -> dict[str, str]:
    """The ``hats.properties`` of a catalog as a dict of strings (java-properties escapes undone)."""
    path = Path(catalog_dir) / "hats.properties"
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ReleaseError(f"{path}: missing (not a HATS catalog)") from None
    props = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith(("#", "!")) or "=" not in line:
            continue
        key, value = line.split("=", 1)
        out, i = [], 0
        while i < len(value):
            if value[i] == "\\" and i + 1 < len(value):
                nxt = value[i + 1]
                out.append("\n" if nxt == "n" else nxt)
                i += 2
            else:
                out.append(value[i])
                i += 1
        props[key.strip()] = "".join(out)
    return props
