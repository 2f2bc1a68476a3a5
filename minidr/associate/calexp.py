"""Reading the planes of a calexp for forced photometry, without astropy's per-tile overhead.

calexps are tile-compressed FITS (:func:`minidr.repo.store.write_calexp`): IMAGE and
VARIANCE as lossless ``GZIP_2`` float32 in tiles of whole rows, MASK as ``RICE_1``. astropy
decompresses tile by tile through several Python layers; for a 2048 x 2048 plane that costs
~0.4 s of CPU, most of it outside zlib. Here a plane with exactly that layout (``GZIP_2``,
``ZBITPIX = -32``, tiles of whole rows, no quantisation, scaling or blank keywords, only
the ``COMPRESSED_DATA`` column) is read as one block: the heap descriptors give each tile's
bytes, :func:`isal.isal_zlib.decompress` (ISA-L's inflate, faster than zlib's; it releases
the GIL, so frames decode in parallel threads) inflates them and four strided copies undo
each tile's byte shuffle, straight into native byte order. Any other layout (and MASK) is
read by astropy. The arrays are identical to
:func:`minidr.repo.store.read_calexp`'s (tested).
"""

from __future__ import annotations

import json
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from isal import isal_zlib

from minidr.errors import InputError


@dataclass
class ForcedInputs:
    """What forced photometry needs from one calexp: ``image`` [e-, background subtracted,
    float32], ``variance`` [e^2, float32], ``mask`` (uint16 MaskBit plane), ``wcs`` (astropy
    WCS, 0-based pixels; None if the calexp has none) and ``psf`` (the PSF model's dict, :meth:`PsfModel.from_dict`)."""

    image: np.ndarray
    variance: np.ndarray
    mask: np.ndarray
    wcs: object
    psf: dict


_FAST_KEYS = {"ZCMPTYPE": "GZIP_2", "ZBITPIX": -32, "ZNAXIS": 2, "TFIELDS": 1, "TTYPE1": "COMPRESSED_DATA"}
_NOT_ALLOWED = ("ZQUANTIZ", "ZSCALE", "ZZERO", "ZBLANK", "BSCALE", "BZERO", "ZDITHER0")


#: byte j (most significant first) of a big-endian float32 is byte _NATIVE_BYTE[j] of a native one
_NATIVE_BYTE = (3, 2, 1, 0) if sys.byteorder == "little" else (0, 1, 2, 3)


def _fast_layout(h) -> bool:
    if any(h.get(k) != v for k, v in _FAST_KEYS.items()):
        return False
    if h.get("ZTILE1") != h.get("ZNAXIS1") or any(k in h for k in _NOT_ALLOWED):
        return False
    if h.get("ZQUANTIZ", "NONE") != "NONE":
        return False
    return str(h.get("TFORM1", "")).upper().startswith(("1PB", "PB"))


def _gzip2_rows(raw: bytes, header) -> np.ndarray:
    """Decode a GZIP_2 float32 plane of full-width tiles from its binary-table data block."""
    nx = int(header["ZNAXIS1"])
    ny = int(header["ZNAXIS2"])
    nrows = int(header["NAXIS2"])
    theap = int(header.get("THEAP", int(header["NAXIS1"]) * nrows))
    if int(header["NAXIS1"]) != 8:
        raise ValueError("unexpected tile table")
    desc = np.frombuffer(raw, dtype=">i4", count=2 * nrows).reshape(nrows, 2).astype(np.int64)
    heap = memoryview(raw)[theap:]
    out = np.empty((ny * nx, 4), dtype=np.uint8)
    pos = 0
    for n, off in desc.tolist():
        tile = np.frombuffer(isal_zlib.decompress(heap[off:off + n], 31), dtype=np.uint8)  # gzip stream
        k = tile.size // 4
        if k * 4 != tile.size or pos + k > out.shape[0]:
            raise ValueError("tile of unexpected size")
        # GZIP_2 shuffles each tile's bytes: all first (most significant) bytes, then all
        # second...; each goes to its column of the native (little- or big-endian) float
        for j in range(4):
            out[pos:pos + k, _NATIVE_BYTE[j]] = tile[j * k:(j + 1) * k]
        pos += k
    if pos != out.shape[0]:
        raise ValueError("tiles do not cover the image")
    return out.view(np.float32).reshape(ny, nx)


def read_forced_inputs(path) -> ForcedInputs:
    """Read IMAGE, VARIANCE, MASK, the WCS and the PSF model of the calexp at ``path``.

    Raises :class:`InputError` (naming the file) when it cannot be read.
    """
    from astropy.io import fits
    from astropy.wcs import WCS

    path = str(path)
    if not Path(path).is_file():
        raise InputError("file not found", path=path)
    planes = {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with open(path, "rb") as fh, fits.open(fh, memmap=False, disable_image_compression=True,
                                                   lazy_load_hdus=True) as raw:
                primary = raw[0].header
                if primary.get("MDRTYPE") != "calexp":
                    raise InputError(f"not a minidr calexp file (MDRTYPE={primary.get('MDRTYPE')!r})",
                                     path=path, keyword="MDRTYPE")
                extra = json.loads(primary.get("EXTRA") or "{}")
                for name in ("IMAGE", "VARIANCE"):
                    hdu = raw[name]
                    if _fast_layout(hdu.header):
                        info = hdu.fileinfo()
                        fh.seek(info["datLoc"])
                        planes[name] = _gzip2_rows(fh.read(info["datSpan"]), hdu.header)
            with fits.open(path, memmap=False) as hdul:
                for name, dtype in (("IMAGE", np.float32), ("VARIANCE", np.float32), ("MASK", np.uint16)):
                    if name not in planes:
                        planes[name] = np.ascontiguousarray(hdul[name].data, dtype=dtype)
                header = hdul["IMAGE"].header
                wcs = WCS(header) if "CTYPE1" in header else None
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reading problem names the file
        raise InputError(f"cannot read calexp ({type(exc).__name__}: {exc})", path=path) from None
    if not (planes["IMAGE"].shape == planes["VARIANCE"].shape == planes["MASK"].shape):
        raise InputError("IMAGE, MASK and VARIANCE differ in shape", path=path)
    if "psf" not in extra:
        raise InputError("no PSF model stored", path=path, keyword="EXTRA")
    return ForcedInputs(planes["IMAGE"], planes["VARIANCE"], planes["MASK"], wcs, extra["psf"])
