"""Image characterisation and measurement: background, PSF, detection, deblending and
measurement of one image (see docs/measurement.md).

``detect(image, variance=None, mask=None, wcs=None, config=None)`` is the one-call
function, "as sep does"; :func:`minidr.image.characterize.characterize` gives the whole
result (sources, PSF model, background, background-subtracted image).
"""

from __future__ import annotations

import numpy as np

# Import the submodule minidr.image.detect first: importing it later would rebind the
# package attribute ``detect`` from the function below to the module.
from . import detect as _detect_module  # noqa: F401


def detect(image, variance=None, mask=None, wcs=None, config=None):
    """Detect and measure the sources of one image; returns a numpy structured array.

    ``image`` in electrons (sky not subtracted), ``variance`` [e^2] (when None: the
    background rms map squared, i.e. background noise only), ``mask`` a MaskBit uint16
    plane or None, ``wcs`` an ``astropy.wcs.WCS`` (adds ``ra``, ``dec`` [deg]), ``config``
    a :class:`minidr.Config`. Fields: see ``minidr.image.measure.SOURCE_DTYPE``
    (x, y 0-based pixels; fluxes in the image's units).
    """
    from ..config import Config
    from .background import Background
    from .characterize import characterize

    cfg = config if config is not None else Config()
    image = np.ascontiguousarray(image, dtype=np.float32)
    if variance is None:
        bg = Background(image, mask, cfg.background)
        variance = (bg.rms().astype(np.float64) ** 2).astype(np.float32)
    res = characterize(image, variance, mask, cfg)
    src = res.sources
    if wcs is not None:
        ra, dec = wcs.all_pix2world(src["x"], src["y"], 0)
        out = np.zeros(len(src), dtype=src.dtype.descr[:2] + [("ra", "f8"), ("dec", "f8")] + src.dtype.descr[2:])
        for name in src.dtype.names:
            out[name] = src[name]
        out["ra"] = np.mod(ra, 360.0)
        out["dec"] = dec
        src = out
    return src


__all__ = ["detect"]
