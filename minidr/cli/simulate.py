"""``minidr simulate``: write a seeded simulated survey (raw FITS, refcat, truth tables)."""

from __future__ import annotations

import click

from ._common import message, progress, quiet_option


@click.command("simulate")
@click.argument("outdir", type=click.Path(file_okay=False))
@click.option("--visits", default=3, show_default=True, type=click.IntRange(1, 1000),
              help="Visits per band.")
@click.option("--detectors", default=4, show_default=True, type=click.IntRange(1, 999),
              help="Number of detectors (a grid with gaps).")
@click.option("--bands", default="gri", show_default=True, help="Bands, letters of ugrizy.")
@click.option("--size", default="2048", show_default=True,
              help="Detector size in pixels: PIX (square) or WIDTHxHEIGHT, e.g. 1024x512.")
@click.option("--seed", default=1, show_default=True, type=int, help="Random seed (same seed, same bytes).")
@click.option("--ra", default="150.0", show_default=True,
              help="Field centre RA: degrees or sexagesimal hours (10:00:00).")
@click.option("--dec", default="2.0", show_default=True,
              help="Field centre Dec: degrees or sexagesimal (+02:00:00).")
@click.option("--compress", is_flag=True, help="Write RICE tile-compressed .fits.fz files.")
@click.option("--biases", default=5, show_default=True, type=click.IntRange(1, 100),
              help="Bias frames per detector.")
@click.option("--darks", default=3, show_default=True, type=click.IntRange(1, 100),
              help="Dark frames per detector.")
@click.option("--flats", default=3, show_default=True, type=click.IntRange(1, 100),
              help="Flat frames per detector and band.")
@quiet_option
def simulate(outdir, visits, detectors, bands, size, seed, ra, dec, compress, biases, darks, flats,
             quiet):
    """Simulate a survey into OUTDIR: raw bias/dark/flat/science FITS, refcat and truth."""
    from ..simulate import n_files, parse_size
    from ..simulate import simulate as run
    from ..sky.coords import parse_dec, parse_ra

    ra_deg, dec_deg = parse_ra(ra), parse_dec(dec)
    shape = parse_size(size)
    total = n_files(visits, detectors, bands, biases, darks, flats)
    with progress(total, "simulating", quiet) as advance:
        res = run(outdir, visits=visits, detectors=detectors, bands=bands, size=shape, seed=seed,
                  ra=ra_deg, dec=dec_deg, compress=compress, progress=advance,
                  n_bias=biases, n_dark=darks, n_flat=flats)
    message(f"wrote {len(res.raw_files)} raw files, refcat and truth tables to {res.outdir}", quiet)
