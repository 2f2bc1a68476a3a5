"""``minidr demo [DIR]``: the whole chain on a small survey, then two example queries."""

from __future__ import annotations

import time
from pathlib import Path

import click

from ._common import message, progress, quiet_option

DEMO_QUERIES = [
    ("Brightest point sources within 2 arcmin of the field centre",
     "SELECT objectId, coord_ra, coord_dec, nDetections, r_psfMag, g_psfMag - r_psfMag AS g_r\n"
     "FROM Object\n"
     "WHERE cone(coord_ra, coord_dec, {ra}, {dec}, 2.0/60) AND refExtendedness < 0.5\n"
     "ORDER BY r_psfMag LIMIT 5"),
    ("Seeing, zero point and astrometric RMS per visit",
     "SELECT visit, band, round(seeing, 2) AS seeing_arcsec, round(zeroPoint, 3) AS zp,\n"
     "       round(astromRms * 1000, 1) AS astrom_rms_mas, nSources\n"
     "FROM Visit ORDER BY visit"),
]


def sample_dir() -> Path | None:
    """The committed sample survey of a source checkout, if there is one."""
    p = Path(__file__).resolve().parents[2] / "data_samples"
    return p if (p / "refcat.parquet").exists() else None


@click.command()
@click.argument("directory", default="minidr-demo", type=click.Path(file_okay=False))
@click.option("--jobs", "-j", default=2, show_default=True, type=click.IntRange(1, 256))
@quiet_option
def demo(directory, jobs, quiet):
    """Simulate (or take data_samples/), ingest, process, associate, release DR1, query it."""
    from .. import pipeline
    from ..query import open_release
    from ..query.formats import render
    from ..repo import layout
    from ..repo.lock import repo_lock
    from ..repository import Repo

    t0 = time.perf_counter()
    base = Path(directory)
    repo_path = base / "repo"
    data = sample_dir()
    if data is None:
        from ..simulate import simulate

        data = base / "survey"
        if not (data / "refcat.parquet").exists():
            message(f"simulating a small survey into {data} ...", quiet)
            simulate(data, visits=3, detectors=2, bands="gr", size=1024, seed=42)
    message(f"survey: {data}", quiet)
    if not (repo_path / layout.CONFIG).exists():
        Repo.create(repo_path)
    repo = Repo(repo_path)
    if not layout.release_dir(repo.path, "DR1").exists():
        with repo_lock(repo.path):
            rep = repo.ingest([data / "raw"], refcat=data / "refcat.parquet")
            message(f"ingest: {rep.summary()}" if hasattr(rep, "summary") else f"ingest: {rep}", quiet)
            reports = pipeline.run(repo, "DR1", jobs=jobs, progress=progress, quiet=quiet,
                                   echo=lambda s: message(s, quiet))
        for r in reports:
            for unit, msg in r.failed:
                click.echo(f"failed: {msg}", err=True)
    dr = open_release(repo.path, "DR1")
    counts = dr.tables()
    frames = counts.get("CcdVisit", 0)
    parts = sum(1 for _ in (layout.release_dir(repo.path, "DR1") / "Object" / "dataset").rglob("Npix=*.parquet"))
    click.echo("")
    click.echo(f"minidr demo: release DR1 in {layout.release_dir(repo.path, 'DR1')}")
    click.echo(f"  frames {frames}, sources {counts.get('Source', 0)}, objects {counts.get('Object', 0)}, "
               f"forced sources {counts.get('ForcedSource', 0)}, Object partitions {parts}, "
               f"time {time.perf_counter() - t0:.1f} s")
    centre = dr.sql("SELECT avg(coord_ra) AS ra, avg(coord_dec) AS dec FROM Object").to_pylist()[0]
    for title, sql in DEMO_QUERIES:
        q = sql.format(ra=round(centre["ra"], 5), dec=round(centre["dec"], 5))
        click.echo(f"\n-- {title}\n{q};")
        click.echo(render(dr.sql(q), "table").decode().rstrip())
    click.echo(f"\nTry: minidr sql {repo.path} \"SELECT count(*) FROM Object\"   or   minidr explore {repo.path}")
