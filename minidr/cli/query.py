"""``minidr sql``, ``minidr cone`` and ``minidr xmatch``: thin wrappers over minidr.query.Release."""

from __future__ import annotations

import shutil
import sys
import threading
from pathlib import Path

import click

from ..errors import InputError, QueryError
from ._common import message, quiet_option

FORMATS = ("table", "csv", "json", "parquet", "fits")

release_option = click.option("--release", "release_name", default=None, help="Release name (default: the newest).")
format_option = click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True, help="Output format."
)
output_option = click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
                             help="Write the result to FILE instead of stdout.")
max_rows_option = click.option("--max-rows", type=int, default=None, help="Row cap (default: query.max_rows).")
timeout_option = click.option("--timeout", type=float, default=None, help="Time limit in seconds (default: query.timeout).")


def _open(repo: str, name: str | None):
    from ..query import open_release

    return open_release(repo, name)


def _run_interruptible(dr, fn):
    """Run ``fn()`` in a worker thread so that Ctrl-C interrupts the DuckDB query."""
    box: dict = {}

    def target():
        try:
            box["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            box["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    try:
        while t.is_alive():
            t.join(0.1)
    except KeyboardInterrupt:
        dr.interrupt()
        t.join(5.0)
        raise
    if "error" in box:
        raise box["error"]
    return box["result"]


def _emit(table, fmt: str, output: str | None, quiet: bool) -> None:
    from .._io import atomic_path
    from ..query.formats import BINARY, render

    data = render(table, fmt)
    truncated = (table.schema.metadata or {}).get(b"truncated") == b"true"
    if output:
        with atomic_path(Path(output)) as tmp:
            Path(tmp).write_bytes(data)
        message(f"wrote {table.num_rows} rows to {output}", quiet)
    else:
        if fmt in BINARY and sys.stdout.isatty():
            raise QueryError(f"--format {fmt} is binary: give -o FILE or redirect stdout")
        if fmt == "table" and sys.stdout.isatty():
            text = data.decode()
            height = shutil.get_terminal_size((80, 24)).lines
            if text.count("\n") > height - 2:
                click.echo_via_pager(text)
            else:
                click.echo(text, nl=False)
        else:
            out = sys.stdout.buffer
            out.write(data)
            out.flush()
    if truncated:
        message(f"{table.num_rows} rows shown: the result was truncated at the row cap (raise --max-rows)", quiet=False)
    elif fmt == "table" and not output:
        message(f"({table.num_rows} rows)", quiet)


@click.command("sql")
@click.argument("repo", type=click.Path(exists=True, file_okay=False))
@click.argument("query")
@release_option
@click.option("--dialect", type=click.Choice(["duckdb", "adql", "qserv"]), default="duckdb", show_default=True,
              help="SQL dialect of QUERY.")
@format_option
@output_option
@max_rows_option
@timeout_option
@click.option("--explain", is_flag=True, help="Print DuckDB's analysed plan (files and row groups read) instead.")
@quiet_option
def sql(repo, query, release_name, dialect, fmt, output, max_rows, timeout, explain, quiet):
    """Run a read-only SQL QUERY against a release of REPO.

    Tables Object, Source, ForcedSource, Visit and CcdVisit; spatial functions ang_sep,
    cone, box, polygon, scisql_*, and ADQL with --dialect adql. Use "-" to read QUERY from stdin.
    """
    if query == "-":
        query = sys.stdin.read()
    dr = _open(repo, release_name)
    if explain:
        click.echo(_run_interruptible(dr, lambda: dr.explain(query, dialect)))
        return
    table = _run_interruptible(dr, lambda: dr.sql(query, dialect, max_rows=max_rows, timeout=timeout))
    _emit(table, fmt, output, quiet)


@click.command("cone", context_settings={"ignore_unknown_options": True})
@click.argument("repo", type=click.Path(exists=True, file_okay=False))
@click.argument("ra")
@click.argument("dec")
@click.argument("radius_arcsec", type=float)
@release_option
@click.option("--table", default="Object", show_default=True, help="Table to search (Object, Source, ForcedSource).")
@click.option("--columns", default=None, help="Comma-separated columns (default: all).")
@format_option
@output_option
@max_rows_option
@quiet_option
def cone(repo, ra, dec, radius_arcsec, release_name, table, columns, fmt, output, max_rows, quiet):
    """Rows of a release within RADIUS_ARCSEC of RA DEC (degrees or sexagesimal), nearest first.

    Example: minidr cone REPO 10:12:45.3 -02:03:04 30 --columns objectId,coord_ra,coord_dec
    """
    dr = _open(repo, release_name)
    result = _run_interruptible(dr, lambda: dr.cone(ra, dec, radius_arcsec, table=table, columns=columns,
                                                    max_rows=max_rows))
    _emit(result, fmt, output, quiet)


def read_positions(path: str):
    """A CSV, Parquet or FITS table as a pyarrow Table (InputError naming the file)."""
    import pyarrow as pa

    p = Path(path)
    suffix = "".join(p.suffixes[-2:]).lower() if p.suffix.lower() == ".gz" else p.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return pq.read_table(p)
        if suffix in (".fits", ".fit", ".fts", ".fits.gz"):
            from astropy.table import Table

            from ..query.xmatch import to_arrow

            return to_arrow(Table.read(p))
        if suffix in (".csv", ".txt", ".csv.gz"):
            import pyarrow.csv as pcsv

            return pcsv.read_csv(p)
    except (OSError, ValueError, pa.ArrowInvalid) as exc:
        raise InputError(f"cannot read table: {str(exc).splitlines()[0]}", path=str(p)) from None
    raise InputError("unknown table format (use .csv, .parquet or .fits)", path=str(p))


@click.command("xmatch")
@click.argument("repo", type=click.Path(exists=True, file_okay=False))
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, dir_okay=False))
@release_option
@click.option("--radius", type=float, default=1.0, show_default=True, help="Match radius in arcsec.")
@click.option("--table", default="Object", show_default=True, help="Release table to match against.")
@click.option("--ra-column", default="ra", show_default=True, help="RA column of INPUT [deg].")
@click.option("--dec-column", default="dec", show_default=True, help="Dec column of INPUT [deg].")
@click.option("--columns", default=None, help="Comma-separated columns of the match (default: all).")
@format_option
@output_option
@quiet_option
def xmatch(repo, input_path, release_name, radius, table, ra_column, dec_column, columns, fmt, output, quiet):
    """Nearest release row within --radius of each position in INPUT (CSV, Parquet or FITS).

    Every input row is kept; unmatched rows get nulls and no separation.
    """
    positions = read_positions(input_path)
    dr = _open(repo, release_name)
    result = _run_interruptible(dr, lambda: dr.xmatch(positions, radius_arcsec=radius, table=table,
                                                      ra_column=ra_column, dec_column=dec_column,
                                                      columns=columns))
    n = int(result["separation"].is_valid().to_numpy(zero_copy_only=False).sum()) if "separation" in result.column_names else 0
    message(f"{n} of {result.num_rows} positions matched within {radius:g} arcsec", quiet)
    _emit(result, fmt, output, quiet)


__all__ = ["sql", "cone", "xmatch", "read_positions"]
