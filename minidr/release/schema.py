"""Names, types, units and descriptions of every published table: the single source of truth.

Every field carries ``{b"unit": <astropy unit string>, b"description": <text>}`` in its
Arrow metadata. Object, Source and ForcedSource start with ``_healpix_29``. Columns marked
optional (metadata ``b"optional": b"1"``) may be absent from the input of :func:`conform`
and are then filled with nulls; every other missing column is an error.
"""

from __future__ import annotations

import pyarrow as pa

from ..errors import InputError

HEALPIX_COLUMN = "_healpix_29"

_I32, _I64, _F64, _STR = pa.int32(), pa.int64(), pa.float64(), pa.string()


def _fld(name: str, type_: pa.DataType, unit: str, description: str, *, optional: bool = False) -> pa.Field:
    meta = {b"unit": unit.encode(), b"description": description.encode()}
    if optional:
        meta[b"optional"] = b"1"
    return pa.field(name, type_, nullable=True, metadata=meta)


def healpix_field() -> pa.Field:
    """The ``_healpix_29`` field: int64 nested HEALPix index at order 29 of the row's position."""
    return pa.field(
        HEALPIX_COLUMN,
        _I64,
        nullable=False,
        metadata={
            b"unit": b"",
            b"description": b"nested HEALPix index at order 29 of the row's position (spatial sort key)",
        },
    )


def with_field_docs(schema: pa.Schema) -> pa.Schema:
    """``schema`` with an (empty) unit and description added to every field lacking them."""
    fields = []
    for f in schema:
        meta = dict(f.metadata or {})
        if b"unit" in meta and b"description" in meta:
            fields.append(f)
            continue
        meta.setdefault(b"unit", b"")
        meta.setdefault(b"description", b"")
        fields.append(f.with_metadata(meta))
    return pa.schema(fields, metadata=schema.metadata)


SOURCE_SCHEMA = pa.schema([
    healpix_field(),
    _fld("sourceId", _I64, "", "unique id of the source: ccdVisitId * 100000 + 0-based row of the source in its frame"),
    _fld("objectId", _I64, "", "id of the Object the source is associated with"),
    _fld("ccdVisitId", _I64, "", "id of the (visit, detector) frame: visit * 1000 + detector"),
    _fld("visit", _I64, "", "visit (exposure) id: the raw EXPID"),
    _fld("detector", _I32, "", "detector (CCD) number"),
    _fld("band", _STR, "", "filter band name"),
    _fld("midpointMjdTai", _F64, "d", "MJD (TAI) of the middle of the exposure"),
    _fld("ra", _F64, "deg", "right ascension (ICRS)"),
    _fld("dec", _F64, "deg", "declination (ICRS)"),
    _fld("raErr", _F64, "deg", "1-sigma uncertainty of ra (on the sky, not multiplied by cos dec)"),
    _fld("decErr", _F64, "deg", "1-sigma uncertainty of dec"),
    _fld("x", _F64, "pix", "column of the centroid on the assembled detector (0-based, pixel centres at integers)"),
    _fld("y", _F64, "pix", "row of the centroid on the assembled detector (0-based, pixel centres at integers)"),
    _fld("xErr", _F64, "pix", "1-sigma uncertainty of x"),
    _fld("yErr", _F64, "pix", "1-sigma uncertainty of y"),
    _fld("psfFlux", _F64, "nJy", "calibrated PSF-fit flux"),
    _fld("psfFluxErr", _F64, "nJy", "1-sigma uncertainty of psfFlux"),
    _fld("apFlux", _F64, "nJy", "calibrated circular-aperture flux"),
    _fld("apFluxErr", _F64, "nJy", "1-sigma uncertainty of apFlux"),
    _fld("ixx", _F64, "pix2", "second moment of the light distribution along x"),
    _fld("iyy", _F64, "pix2", "second moment of the light distribution along y"),
    _fld("ixy", _F64, "pix2", "cross second moment of the light distribution"),
    _fld("sky", _F64, "nJy", "calibrated local sky background per pixel at the source (nJy per pixel)"),
    _fld("extendedness", _F64, "", "0 for point-like, 1 for extended (psfFlux / model-flux ratio test)"),
    _fld("snr", _F64, "", "signal-to-noise ratio of psfFlux"),
    _fld("flags", _I32, "", "bit flags: 1 SATURATED, 2 EDGE, 4 BLENDED, 8 CR, 16 BAD, 32 INTERPOLATED, "
         "64 CENTROID, 128 SHAPE, 256 PSF_FIT (see minidr.products.SourceFlag)"),
])

FORCED_SOURCE_SCHEMA = pa.schema([
    healpix_field(),
    _fld("forcedSourceId", _I64, "", "unique id of the forced measurement"),
    _fld("objectId", _I64, "", "id of the Object measured"),
    _fld("ccdVisitId", _I64, "", "id of the (visit, detector) frame measured: visit * 1000 + detector"),
    _fld("visit", _I64, "", "visit (exposure) id: the raw EXPID"),
    _fld("band", _STR, "", "filter band name"),
    _fld("midpointMjdTai", _F64, "d", "MJD (TAI) of the middle of the exposure"),
    _fld("psfFlux", _F64, "nJy", "calibrated PSF flux measured at the Object's position"),
    _fld("psfFluxErr", _F64, "nJy", "1-sigma uncertainty of psfFlux"),
    _fld("coord_ra", _F64, "deg", "right ascension (ICRS) of the Object at which the flux was measured"),
    _fld("coord_dec", _F64, "deg", "declination (ICRS) of the Object at which the flux was measured"),
])

_OBJECT_BAND_FIELDS = [
    ("psfFluxMean", _F64, "nJy", "inverse-variance weighted mean of the band's good Source psfFlux"),
    ("psfFluxMeanErr", _F64, "nJy", "1-sigma uncertainty of psfFluxMean"),
    ("psfFluxSigma", _F64, "nJy", "standard deviation of the band's good Source psfFlux"),
    ("psfFluxChi2", _F64, "", "chi-square of the band's good Source psfFlux about psfFluxMean (not reduced)"),
    ("psfFluxNdata", _I64, "", "number of the band's good Sources (not saturated, edge or badly masked)"),
    ("psfMag", _F64, "mag", "AB magnitude of psfFluxMean: -2.5 log10(psfFluxMean / nJy) + 31.4"),
]


def object_schema(bands: list[str]) -> pa.Schema:
    """Schema of the Object table with the per-band columns of ``bands`` (in that order)."""
    bands = list(bands)
    if len(set(bands)) != len(bands) or not all(isinstance(b, str) and b for b in bands):
        raise InputError(f"bad band list {bands!r}: names must be distinct non-empty strings")
    fields = [
        healpix_field(),
        _fld("objectId", _I64, "", "unique id of the object (1 + rank of the objects by HEALPix position)"),
        _fld("coord_ra", _F64, "deg", "right ascension (ICRS): weighted mean of the Sources' ra"),
        _fld("coord_dec", _F64, "deg", "declination (ICRS): weighted mean of the Sources' dec"),
        _fld("coord_raErr", _F64, "deg", "1-sigma uncertainty of coord_ra (on the sky)"),
        _fld("coord_decErr", _F64, "deg", "1-sigma uncertainty of coord_dec"),
        _fld("nDetections", _I64, "", "number of Sources (all bands, all flags) associated with the object"),
        _fld("refExtendedness", _F64, "", "0 for point sources, 1 for extended ones (a probability in between)"),
        _fld("firstMjd", _F64, "d", "MJD (TAI) of the first Source of the object"),
        _fld("lastMjd", _F64, "d", "MJD (TAI) of the last Source of the object"),
    ]
    for b in bands:
        for suffix, t, unit, doc in _OBJECT_BAND_FIELDS:
            fields.append(_fld(f"{b}_{suffix}", t, unit, f"{b} band: {doc}"))
    return pa.schema(fields)


VISIT_SCHEMA = pa.schema([
    _fld("visit", _I64, "", "visit (exposure) id: the raw EXPID"),
    _fld("band", _STR, "", "filter band name"),
    _fld("ra", _F64, "deg", "right ascension of the telescope pointing (raw header RA)"),
    _fld("dec", _F64, "deg", "declination of the telescope pointing (raw header DEC)"),
    _fld("obsStartMjd", _F64, "d", "MJD (TAI) of the start of the exposure (raw MJD-OBS)"),
    _fld("midpointMjdTai", _F64, "d", "MJD (TAI) of the middle of the exposure"),
    _fld("expTime", _F64, "s", "exposure time"),
    _fld("seeing", _F64, "arcsec", "median over the visit's detectors of the PSF FWHM"),
    _fld("skyBg", _F64, "electron", "median over detectors of the sky background level per pixel"),
    _fld("skyNoise", _F64, "electron", "median over detectors of the sky noise (rms) per pixel"),
    _fld("zeroPoint", _F64, "mag", "median over detectors of the zero point: AB mag = zeroPoint - 2.5 log10(flux / e-)"),
    _fld("astromRms", _F64, "arcsec", "median over detectors of the astrometric fit RMS against the reference catalog"),
    _fld("nDetectors", _I64, "", "number of detectors of the visit processed successfully", optional=True),
    _fld("nSources", _I64, "", "number of Sources of the visit (all detectors)"),
])

CCD_VISIT_SCHEMA = pa.schema([
    _fld("ccdVisitId", _I64, "", "id of the (visit, detector) frame: visit * 1000 + detector"),
    _fld("visit", _I64, "", "visit (exposure) id: the raw EXPID"),
    _fld("detector", _I32, "", "detector (CCD) number"),
    _fld("band", _STR, "", "filter band name"),
    _fld("midpointMjdTai", _F64, "d", "MJD (TAI) of the middle of the exposure"),
    _fld("obsStartMjd", _F64, "d", "MJD (TAI) of the start of the exposure (raw MJD-OBS)", optional=True),
    _fld("expTime", _F64, "s", "exposure time"),
    _fld("ra", _F64, "deg", "right ascension of the detector centre (fitted WCS)"),
    _fld("dec", _F64, "deg", "declination of the detector centre (fitted WCS)"),
    _fld("seeing", _F64, "arcsec", "PSF FWHM"),
    _fld("psfFwhm", _F64, "pix", "PSF FWHM"),
    _fld("pixelScale", _F64, "arcsec/pix", "pixel scale at the detector centre (fitted WCS)", optional=True),
    _fld("skyBg", _F64, "electron", "sky background level per pixel"),
    _fld("skyNoise", _F64, "electron", "sky noise (rms) per pixel"),
    _fld("zeroPoint", _F64, "mag", "zero point: AB mag = zeroPoint - 2.5 log10(flux / e-)"),
    _fld("zeroPointErr", _F64, "mag", "1-sigma uncertainty of zeroPoint", optional=True),
    _fld("nPhotStars", _I64, "", "reference stars used for the zero point", optional=True),
    _fld("astromRms", _F64, "arcsec", "RMS of the astrometric fit residuals against the reference catalog"),
    _fld("astromNMatch", _I64, "", "reference stars matched in the astrometric fit"),
    _fld("wcsOffset", _F64, "arcsec", "offset of the fitted WCS from the raw header WCS", optional=True),
    _fld("wcsRotation", _F64, "deg", "rotation of the fitted WCS from the raw header WCS", optional=True),
    _fld("nSources", _I64, "", "number of Sources of the frame"),
    _fld("status", _STR, "", "processing status of the frame: 'ok' or the reason it failed", optional=True),
])

TABLES = ("Object", "Source", "ForcedSource", "Visit", "CcdVisit")
CATALOG_POSITION = {
    "Object": ("coord_ra", "coord_dec"),
    "Source": ("ra", "dec"),
    "ForcedSource": ("coord_ra", "coord_dec"),
}
"""RA/Dec columns (degrees) of the HATS catalogs of a release."""


def schema_for(name: str, bands: list[str] | None = None) -> pa.Schema:
    """Schema of the release table ``name`` (one of :data:`TABLES`); Object needs ``bands``."""
    if name == "Object":
        if bands is None:
            raise InputError("the Object schema needs the list of bands")
        return object_schema(bands)
    fixed = {
        "Source": SOURCE_SCHEMA,
        "ForcedSource": FORCED_SOURCE_SCHEMA,
        "Visit": VISIT_SCHEMA,
        "CcdVisit": CCD_VISIT_SCHEMA,
    }
    if name not in fixed:
        raise InputError(f"unknown release table {name!r}; known: {', '.join(TABLES)}")
    return fixed[name]


def conform(table: pa.Table, schema: pa.Schema, name: str | None = None) -> pa.Table:
    """``table`` reduced to ``schema``: columns selected, ordered and cast, metadata attached.

    Extra columns are dropped, except those a measurement plug-in added (field metadata
    ``plugin``, see :mod:`minidr.plugins`), which follow the schema's columns with their own
    units and descriptions. ``_healpix_29`` may be absent (the writer computes it), as
    may optional columns (filled with nulls). Any other missing column, or one that cannot
    be cast, raises :class:`InputError` naming it (and ``name``, the table, when given).
    """
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    names = set(table.column_names)
    missing = [
        f.name
        for f in schema
        if f.name not in names and f.name != HEALPIX_COLUMN and (f.metadata or {}).get(b"optional") != b"1"
    ]
    if missing:
        raise InputError(f"missing column(s) {', '.join(missing)}", path=name)
    fields, columns = [], []
    for f in schema:
        if f.name not in names:
            if f.name == HEALPIX_COLUMN:
                continue
            columns.append(pa.nulls(table.num_rows, type=f.type))
        else:
            col = table[f.name]
            if col.type != f.type:
                try:
                    col = col.cast(f.type)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise InputError(f"cannot convert {col.type} to {f.type}: {exc}", path=name,
                                     keyword=f.name) from None
            columns.append(col)
        fields.append(f)
    known = set(schema.names)
    for f in table.schema:
        if f.name not in known and b"plugin" in (f.metadata or {}):
            fields.append(f)
            columns.append(table[f.name])
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))
