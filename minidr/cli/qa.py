"""``minidr qa REPO [NAME]``: quality plots and metrics of a release."""

from __future__ import annotations

import click

from ._common import message, quiet_option


@click.command()
@click.argument("repo", type=click.Path(exists=True, file_okay=False))
@click.argument("name", required=False)
@click.option("--truth", "truth_dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="Folder of a 'minidr simulate' survey (default: found beside the raws, if any).")
@click.option("-o", "--output", type=click.Path(file_okay=False), default=None,
              help="Folder for the plots and summary (default: REPO/qa/NAME).")
@quiet_option
def qa(repo, name, truth_dir, output, quiet):
    """Write PNG plots and a markdown summary of release NAME (default: the newest).

    Sky density, per-frame zero point, seeing and astrometric RMS, photometric (PA1) and
    astrometric repeatability of bright stars with their noise-only expectation, and, for
    a simulated survey, completeness and purity against the truth.
    """
    from ..qa.report import run_qa

    rep = run_qa(repo, name, truth_dir=truth_dir, out_dir=output)
    click.echo(rep.summary_path.read_text())
    message(f"wrote {rep.summary_path} and {len(rep.plots)} plots", quiet)
