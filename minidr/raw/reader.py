"""The only module that opens raw FITS files.

* :func:`read_header` validates a raw file (all keywords and sections) without reading pixels.
* :func:`read_raw` adds one integer ADU array per amplifier, as stored (overscan included,
  not flipped: ISR flips using ``Section.flip_x/flip_y``): uint16 for BITPIX 16 with
  BZERO 32768, int16 for BITPIX 16 without, int32 otherwise.

Plain ``.fits``, gzip-compressed ``.fits.gz`` (checked end to end: a truncated stream is
refused) and RICE tile-compressed ``.fits.fz`` (``CompImageHDU`` extensions) are supported.
"""

from __future__ import annotations

import gzip
import io
import warnings
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..products import RawExposure, RawInfo
from .headers import HduHeader, raw_info

_SKIP_KEYS = {"COMMENT", "HISTORY", ""}


def _oneline(exc: BaseException, limit: int = 160) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


@contextmanager
def _open(path: Path):
    """astropy HDUList of a raw file; every failure to read becomes an InputError."""
    from astropy.io import fits

    if not path.exists():
        raise InputError("file not found", path=str(path))
    if path.is_dir():
        raise InputError("is a directory, not a FITS file", path=str(path))
    source: object = str(path)
    try:
        gz = _is_gzip(path)
        if gz:
            # Decompress once, end to end: gzip's CRC and length catch a truncated file,
            # which astropy would otherwise silently read as fewer HDUs.
            with gzip.open(path, "rb") as fh:
                source = io.BytesIO(fh.read())
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"corrupt or truncated gzip stream ({_oneline(exc)})", path=str(path)) from None
    size = source.getbuffer().nbytes if gz else path.stat().st_size
    if size < 2880:
        raise InputError(f"not a FITS file ({size} bytes, shorter than one 2880-byte FITS block)", path=str(path))
    with warnings.catch_warnings():
        warnings.simplefilter("error", category=UserWarning)  # "File may have been truncated" etc.
        try:
            hdul = fits.open(source, memmap=False, lazy_load_hdus=False)
        except Warning as exc:
            raise InputError(f"truncated or damaged FITS file ({_oneline(exc)})", path=str(path)) from None
        except (OSError, ValueError, TypeError, IndexError, KeyError, EOFError) as exc:
            raise InputError(f"not a readable FITS file ({_oneline(exc)})", path=str(path)) from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=UserWarning)  # non-standard cards: read what we can
            last = hdul[-1].fileinfo()
            end = last["datLoc"] + _data_bytes(hdul[-1])
            if end > size:
                raise InputError(f"truncated FITS file ({size} bytes, {end} expected)", path=str(path))
            yield hdul
    finally:
        hdul.close()


def _data_bytes(hdu) -> int:
    """Bytes of an HDU's data as stored (without block padding), from its raw header."""
    from astropy.io import fits

    if isinstance(hdu, fits.CompImageHDU):
        table = getattr(hdu, "_bintable", None)
        if table is None:  # other astropy versions: the padded span, less one block of slack
            return max(hdu.fileinfo()["datSpan"] - 2879, 0)
        hdr = table.header
    else:
        hdr = hdu.header
    naxis = int(hdr.get("NAXIS", 0))
    if naxis == 0:
        return 0
    n = 1
    for i in range(1, naxis + 1):
        n *= int(hdr.get(f"NAXIS{i}", 0))
    bits = abs(int(hdr.get("BITPIX", 8)))
    return bits // 8 * int(hdr.get("GCOUNT", 1)) * (int(hdr.get("PCOUNT", 0)) + n)


def _header_dict(header) -> dict:
    return {k: v for k, v in header.items() if k not in _SKIP_KEYS}


def _pixel_hdus(path: Path, hdul) -> list:
    """(index, hdu) of the HDUs that hold amplifier pixels, in file order."""
    from astropy.io import fits

    primary = hdul[0]
    primary_has_data = int(primary.header.get("NAXIS", 0)) > 0
    ext = [(i, h) for i, h in enumerate(hdul) if i > 0 and isinstance(h, (fits.ImageHDU, fits.CompImageHDU))
           and int(h.header.get("NAXIS", 0)) > 0]
    if primary_has_data and ext:
        raise InputError(f"pixels in both the primary HDU and {len(ext)} image extension(s); "
                         "expected one or the other", path=str(path), keyword="NAXIS")
    return [(0, primary)] if primary_has_data else ext


def _headers(path: Path, hdul) -> tuple[dict, list[HduHeader]]:
    primary = _header_dict(hdul[0].header)
    hdus = []
    for i, h in _pixel_hdus(path, hdul):
        hdr = _header_dict(h.header)
        naxis = int(hdr.get("NAXIS", 0))
        shape = tuple(int(hdr.get(f"NAXIS{k}", 0)) for k in range(naxis, 0, -1))
        hdus.append(HduHeader(index=i, header=hdr, shape=shape))
    return primary, hdus


def read_header(path: str | Path) -> RawInfo:
    """Validate one raw file's headers and describe it, without reading its pixels.

    Raises :class:`~minidr.errors.InputError` naming the file and the keyword when the file
    breaks a rule (see docs/raw-fits.md).
    """
    path = Path(path)
    with _open(path) as hdul:
        primary, hdus = _headers(path, hdul)
    return raw_info(str(path), primary, hdus)


def read_raw(path: str | Path) -> RawExposure:
    """Read a raw file: its :class:`RawInfo` and one integer ADU array per amplifier, as stored.

    Arrays are indexed ``[y, x]`` in the amplifier's own pixel frame (overscan included, not
    flipped), in native byte order: uint16 for unsigned 16-bit data (BITPIX 16, BZERO 32768:
    their true values), int16 for BITPIX 16 without BZERO, int32 for anything else.
    """
    path = Path(path)
    with _open(path) as hdul:
        primary, hdus = _headers(path, hdul)
        info = raw_info(str(path), primary, hdus)
        if _is_gzip(path):  # already decompressed in memory
            pixels = [_pixels(path, amp.hdu, lambda i: hdul[i].data) for amp in info.amps]
            return RawExposure(info=info, amp_pixels=pixels)
        plain = [_plain_layout(hdul[amp.hdu]) for amp in info.amps]
    if all(p is not None for p in plain):
        return RawExposure(info=info, amp_pixels=_read_plain(path, plain))
    import fitsio  # cfitsio decompresses tiles about twice as fast as astropy

    try:
        with fitsio.FITS(str(path)) as fh:
            pixels = [_pixels(path, amp.hdu, lambda i: fh[i].read()) for amp in info.amps]
    except OSError as exc:
        raise InputError(f"cannot read the pixels ({_oneline(exc)})", path=str(path)) from None
    return RawExposure(info=info, amp_pixels=pixels)


def _plain_layout(hdu):
    """``(offset, shape, bitpix, bzero)`` of an uncompressed 16- or 32-bit integer image HDU
    without scaling (BSCALE 1, BZERO 0, or BZERO 32768 for BITPIX 16), else None."""
    from astropy.io import fits

    if isinstance(hdu, fits.CompImageHDU) or not isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU)):
        return None
    hdr = hdu.header
    bitpix = int(hdr.get("BITPIX", 0))
    naxis = int(hdr.get("NAXIS", 0))
    bscale, bzero = hdr.get("BSCALE", 1), hdr.get("BZERO", 0)
    if naxis != 2 or bscale != 1 or bitpix not in (16, 32):
        return None
    if not (bzero == 0 or (bitpix == 16 and bzero == 32768)):
        return None
    shape = (int(hdr["NAXIS2"]), int(hdr["NAXIS1"]))
    return int(hdu.fileinfo()["datLoc"]), shape, bitpix, int(bzero)


def _read_plain(path: Path, layouts) -> list[np.ndarray]:
    """The pixels of uncompressed HDUs (see :func:`_plain_layout`) straight from the file:
    one read per HDU, then a conversion to native byte order (and the BZERO offset as a flip
    of the sign bit for unsigned 16-bit data). ~4x faster than fitsio's scaled read."""
    out = []
    try:
        with open(path, "rb") as fh:
            for offset, shape, bitpix, bzero in layouts:
                count = shape[0] * shape[1]
                fh.seek(offset)
                big = np.fromfile(fh, dtype=">i2" if bitpix == 16 else ">i4", count=count)
                if big.size != count:
                    raise InputError(f"truncated FITS file ({big.size} of {count} pixels)", path=str(path))
                if bzero:  # int16 + 32768 as uint16: the same bits with the top one flipped
                    arr = big.view(">u2").astype(np.uint16)  # native order (astype: 4x a byteswap's speed)
                    arr ^= np.uint16(0x8000)
                else:
                    arr = big.astype(big.dtype.newbyteorder("="))
                out.append(arr.reshape(shape))
    except OSError as exc:
        raise InputError(f"cannot read the pixels ({_oneline(exc)})", path=str(path)) from None
    return out


def _pixels(path: Path, index: int, read) -> np.ndarray:
    try:
        data = read(index)
    except (OSError, ValueError, TypeError, EOFError, zlib.error) as exc:
        raise InputError(f"cannot read the pixels of HDU {index} ({_oneline(exc)})", path=str(path)) from None
    if data is None or data.ndim != 2:
        raise InputError(f"HDU {index} holds no 2-d image", path=str(path), keyword="NAXIS")
    dtype = data.dtype if data.dtype in (np.dtype(np.uint16), np.dtype(np.int16)) else np.int32
    return np.ascontiguousarray(data, dtype=np.dtype(dtype).newbyteorder("="))


def raw_shape_summary(info: RawInfo) -> str:
    """'4 amps, 2048x4096 (BITPIX 16)': a short description for logs and status."""
    return f"{len(info.amps)} amp{'s' if len(info.amps) != 1 else ''}, {info.shape[1]}x{info.shape[0]} (BITPIX {info.bitpix})"
