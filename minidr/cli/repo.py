"""``minidr init``, ``minidr ingest`` and ``minidr status``: the data repository."""

from __future__ import annotations

import sys

import click

from ._common import message, progress, quiet_option


@click.command()
@click.argument("repo", type=click.Path(file_okay=False))
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="A minidr.toml to start from (missing settings take their defaults).")
@click.option("--partition-rows", type=click.IntRange(min=1), default=None,
              help="Most rows per HEALPix sky chunk of a release table (release.partition_rows).")
@quiet_option
def init(repo, config_file, partition_rows, quiet):
    """Create a new data repository REPO (a new or empty directory)."""
    from ..config import load
    from ..repository import Repo

    cfg = load(config_file) if config_file else None
    r = Repo.create(repo, config=cfg, partition_rows=partition_rows)
    message(f"created repository {r.path} (edit {r.path / 'minidr.toml'} to change settings)", quiet)


@click.command()
@click.argument("repo", type=click.Path(file_okay=False))
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--refcat", type=click.Path(dir_okay=False),
              help="Reference catalog: Parquet, CSV or FITS table with ra, dec [deg] and <band>_mag [AB].")
@quiet_option
def ingest(repo, paths, refcat, quiet):
    """Register raw FITS files (or folders of them) and a reference catalog in REPO.

    Reads headers only. A file that breaks the raw-FITS rules is refused with one line
    naming the file and keyword; the others go in. Exit code 1 if any file was refused.
    """
    from ..repo.ingest import collect_files
    from ..repository import Repo

    if not paths and not refcat:
        raise click.UsageError("give raw files or folders to ingest (PATH...), or --refcat FILE")
    r = Repo(repo)
    total = len(collect_files(paths))
    with progress(total, "ingest", quiet) as advance:
        report = r.ingest(paths, refcat=refcat, progress=advance)
    for _path, msg in report.refused:
        click.echo(f"refused: {msg}", err=True)
    if report.refcat:
        message(f"reference catalog: {report.refcat}", quiet)
    message(report.summary(), quiet)
    sys.exit(1 if report.refused else 0)


@click.command()
@click.argument("repo", type=click.Path(file_okay=False))
def status(repo):
    """Show what REPO holds: raws per type, band and detector; frames processed; releases."""
    from ..repository import Repo

    click.echo(format_status(Repo(repo).status()))


def _table(rows: list[tuple], header: tuple) -> list[str]:
    rows = [tuple(str(c) for c in r) for r in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in rows)) if rows else len(str(h)) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return ["  " + fmt.format(*header).rstrip(), *("  " + fmt.format(*r).rstrip() for r in rows)]


def format_status(st: dict) -> str:
    """The text of ``minidr status`` (aligned tables)."""
    from ..products import IMAGE_TYPES

    out = [f"repository {st['path']}", ""]
    raws = st["raws"]
    out.append(f"raw frames: {raws['total']}")
    if raws["total"]:
        types = [t for t in IMAGE_TYPES if t in raws["by_type"]]
        bands = sorted({k.split(" ", 1)[1] for k in raws["by_band"]})
        dets = sorted({int(k.split(" ", 1)[1]) for k in raws["by_detector"]})
        rows = []
        for t in types:
            rows.append((t, raws["visits"].get(t, 0), raws["by_type"][t],
                         *(raws["by_band"].get(f"{t} {b}", "-" if t in ("bias", "dark") else 0) for b in bands)))
        out += _table(rows, ("type", "visits", "frames", *(f"band {b}" for b in bands)))
        out.append("")
        rows = [(t, *(raws["by_detector"].get(f"{t} {d}", 0) for d in dets)) for t in types]
        out += _table(rows, ("type", *(f"det {d}" for d in dets)))
    out.append("")
    calibs = st["calibs"]
    out.append("master calibrations: " + (", ".join(f"{n} {k}" for k, n in sorted(calibs.items())) or "none"))
    fr = st["frames"]
    out.append(f"science frames: {fr['science']} ingested, {fr['done']} processed, {fr['failed']} failed, "
               f"{fr['pending']} pending")
    for f in st.get("failed_frames", [])[:10]:
        unit = f"visit {f['visit']} detector {f['detector']}"
        msg = str(f["message"] or "")
        out.append(f"  failed: {msg}" if msg.startswith(unit) else f"  failed: {unit}: {msg}")
    if fr["failed"] > 10:
        out.append(f"  ... and {fr['failed'] - 10} more")
    ref = st["refcat"]
    out.append(f"reference catalog: {ref['n_rows']} rows, bands {','.join(ref['bands'])} ({ref['path']})" if ref
               else "reference catalog: none")
    out.append("")
    rel = st["releases"]
    out.append(f"releases: {len(rel)}")
    if rel:
        out += _table([(r["name"], r["n_objects"], r["n_sources"], str(r["created_at"])[:19], r["path"]) for r in rel],
                      ("name", "objects", "sources", "created (UTC)", "path"))
    return "\n".join(out)
