"""``minidr import``: bring any catalog into a release (a thin wrapper over
:func:`minidr.release.importer.import_table`)."""

from __future__ import annotations

import click

from ._common import message, progress, quiet_option

_STAGES = {"read": (0, 600), "group": (600, 750), "write": (750, 990), "publish": (990, 1000)}


@click.command("import")
@click.argument("repo", type=click.Path(exists=True, file_okay=False))
@click.argument("name")
@click.argument("table")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--ra", default=None, help="RA column [deg] (default: guessed from ra, coord_ra, RAJ2000, ...).")
@click.option("--dec", default=None, help="Dec column [deg] (default: guessed from dec, decl, coord_dec, DEJ2000, ...).")
@click.option("--id", "id_column", default=None, help="Id column: sorts rows within a sky pixel (default: the PRIMARY KEY).")
@click.option("--schema", "schema", type=click.Path(exists=True, dir_okay=False), default=None,
              help="File with a MySQL CREATE TABLE statement (types, NOT NULL, COMMENT as description).")
@click.option("--format", "fmt", type=click.Choice(["csv", "tsv", "parquet", "fits"]), default=None,
              help="Input format (default: from the file name; .gz allowed for csv/tsv).")
@click.option("--null", "null", multiple=True, help="Extra NULL token of CSV/TSV (\\N, NULL and empty always are).")
@click.option("--skip-bad", is_flag=True, help="Count and skip bad rows instead of stopping at the first.")
@click.option("--partition-by", default=None, metavar="TABLE:COL",
              help="Partition by the position of the TABLE row with the same COL (e.g. Object:objectId).")
@click.option("--memory", "memory_mb", type=click.IntRange(min=16), default=1024, show_default=True,
              help="MiB of rows held in memory before spilling to disk.")
@quiet_option
def import_(repo, name, table, files, ra, dec, id_column, schema, fmt, null, skip_bad, partition_by, memory_mb, quiet):
    """Import FILE... as TABLE of release NAME in REPO (a new release, or a new table of an existing one).

    Tables with positions become HATS catalogs partitioned by sky chunk, like the pipeline's;
    tables without positions become TABLE.parquet. A bad row stops the import with its file and
    line, and nothing is published (unless --skip-bad).
    """
    from ..release.importer import import_table

    with progress(1000, f"import {table}", quiet) as advance:
        state = {"at": 0}

        def on_progress(stage: str, fraction: float) -> None:
            lo, hi = _STAGES.get(stage, (0, 1000))
            target = int(lo + (hi - lo) * max(0.0, min(1.0, fraction)))
            if target > state["at"]:
                advance(target - state["at"])
                state["at"] = target

        report = import_table(
            repo, name, table, list(files), ra=ra, dec=dec, id_column=id_column, schema=schema, fmt=fmt,
            null=list(null) or None, skip_bad=skip_bad, partition_by=partition_by, progress=on_progress,
            memory_budget=memory_mb << 20,
        )
    where = (f"HATS catalog, {report.partitions} partitions, positions {report.ra}/{report.dec}"
             if report.kind == "hats" else "unpartitioned (no positions)")
    verb = "new release" if report.new_release else "added to release"
    message(f"{report.table}: {report.rows} rows ({where}); {verb} {report.release} in {report.seconds:.1f} s", quiet)
    if report.skipped:
        message(f"skipped {report.skipped} bad rows, first: {report.bad_rows[0]}", quiet=False)
