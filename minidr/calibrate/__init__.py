"""Calibration of one frame against the reference catalog.

* :mod:`minidr.calibrate.refcat`: reference stars on a frame (``select``);
* :mod:`minidr.calibrate.astrometry`: match + TAN-SIP fit (``fit_wcs``), ``pixel_to_sky``,
  ``radec_errors``;
* :mod:`minidr.calibrate.photometry`: ``zero_point``, ``to_njy``;
* :mod:`minidr.calibrate.kernels`: the numba kernels (vote, one-to-one matching).

See docs/calibration.md.
"""
