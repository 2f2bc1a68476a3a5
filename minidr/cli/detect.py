"""``minidr detect IMAGE.fits [-o FILE]``: detect and measure the sources of one image."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import InputError
from ._common import message, quiet_option


def _read_image(path: Path):
    """(image float32, wcs or None, mask or None, variance or None) from the first image HDU
    with data; MASK/VARIANCE extensions of a calexp are used when present."""
    import numpy as np
    from astropy.io import fits
    from astropy.wcs import WCS

    try:
        hdul = fits.open(path, memmap=False)
    except FileNotFoundError:
        raise InputError("file not found", path=str(path)) from None
    except OSError as exc:
        raise InputError(f"not a readable FITS file ({exc})", path=str(path)) from None
    with hdul:
        image = wcs = mask = var = None
        for hdu in hdul:
            name = (hdu.name or "").upper()
            if not hdu.is_image or hdu.data is None or np.ndim(hdu.data) != 2:
                continue
            if image is None and name not in ("MASK", "VARIANCE"):
                image = np.asarray(hdu.data, dtype=np.float32)
                try:
                    w = WCS(hdu.header)
                    wcs = w if w.has_celestial else None
                except Exception:
                    wcs = None
            elif name == "MASK":
                mask = np.asarray(hdu.data).astype(np.uint16)
            elif name == "VARIANCE":
                var = np.asarray(hdu.data, dtype=np.float32)
        if image is None:
            raise InputError("no 2-d image HDU with data", path=str(path))
    if mask is not None and mask.shape != image.shape:
        mask = None
    if var is not None and var.shape != image.shape:
        var = None
    return image, wcs, mask, var


def write_catalog(src, out: str | None):
    """Write a structured array as CSV (stdout or .csv), Parquet or FITS by extension."""
    import numpy as np

    if out is None or out == "-" or out.lower().endswith(".csv"):
        import io

        names = src.dtype.names
        buf = io.StringIO()
        buf.write(",".join(names) + "\n")
        for row in src:
            buf.write(",".join(repr(int(v)) if isinstance(v, (np.integer,)) else f"{float(v):.10g}" for v in row) + "\n")
        if out is None or out == "-":
            sys.stdout.write(buf.getvalue())
        else:
            Path(out).write_text(buf.getvalue())
        return
    low = out.lower()
    if low.endswith(".parquet"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({n: src[n] for n in src.dtype.names}), out)
    elif low.endswith((".fits", ".fit", ".fits.gz")):
        from astropy.table import Table

        Table(src).write(out, overwrite=True)
    else:
        raise InputError("output must end in .csv, .parquet or .fits", path=out)


@click.command("detect")
@click.argument("image", type=click.Path(path_type=Path))
@click.option("-o", "--output", "output", default=None, help="Output file (.csv, .parquet, .fits); CSV on stdout by default.")
@quiet_option
def detect(image, output, quiet):
    """Detect and measure the sources of one reduced image (first image HDU with data)."""
    from ..image import detect as run_detect

    data, wcs, mask, var = _read_image(image)
    src = run_detect(data, variance=var, mask=mask, wcs=wcs)
    write_catalog(src, output)
    message(f"{image}: {len(src)} sources", quiet)
