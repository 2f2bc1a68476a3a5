"""Release schemas: SPEC column names and order, units, descriptions, conform()."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minidr.errors import InputError
from minidr.release import schema as S

SPEC_SOURCE = ("sourceId, objectId, ccdVisitId, visit, detector, band, midpointMjdTai, ra, dec, raErr, decErr, "
               "x, y, xErr, yErr, psfFlux, psfFluxErr, apFlux, apFluxErr, ixx, iyy, ixy, sky, extendedness, snr, flags")
SPEC_OBJECT = "objectId, coord_ra, coord_dec, coord_raErr, coord_decErr, nDetections, refExtendedness, firstMjd, lastMjd"
SPEC_OBJECT_BAND = "psfFluxMean, psfFluxMeanErr, psfFluxSigma, psfFluxChi2, psfFluxNdata, psfMag"
SPEC_FORCED = "forcedSourceId, objectId, ccdVisitId, visit, band, midpointMjdTai, psfFlux, psfFluxErr"


def _names(text):
    return [s.strip() for s in text.split(",")]


def test_columns_follow_spec():
    assert S.SOURCE_SCHEMA.names == ["_healpix_29"] + _names(SPEC_SOURCE)
    bands = ["g", "r", "i"]
    expect = ["_healpix_29"] + _names(SPEC_OBJECT)
    for b in bands:
        expect += [f"{b}_{c}" for c in _names(SPEC_OBJECT_BAND)]
    assert S.object_schema(bands).names == expect
    # ForcedSource: the SPEC columns, then the Object position used for HEALPix partitioning
    assert S.FORCED_SOURCE_SCHEMA.names == ["_healpix_29"] + _names(SPEC_FORCED) + ["coord_ra", "coord_dec"]
    for s in (S.VISIT_SCHEMA, S.CCD_VISIT_SCHEMA):
        for col in ("visit", "band", "ra", "dec", "midpointMjdTai", "expTime", "seeing", "skyBg", "skyNoise",
                    "zeroPoint", "astromRms", "nSources"):
            assert col in s.names
    assert S.CCD_VISIT_SCHEMA.names[:3] == ["ccdVisitId", "visit", "detector"]


@pytest.mark.parametrize("name", ["Object", "Source", "ForcedSource", "Visit", "CcdVisit"])
def test_every_field_has_unit_and_description(name):
    schema = S.schema_for(name, ["g", "r"])
    for f in schema:
        meta = f.metadata
        assert meta[b"description"].strip(), f.name
        unit = meta[b"unit"].decode()
        u.Unit(unit)  # parses as an astropy unit ('' is dimensionless)
    if name in ("Object", "Source", "ForcedSource"):
        assert schema.field(0).name == "_healpix_29" and schema.field(0).type == pa.int64()
    units = {f.name: f.metadata[b"unit"].decode() for f in schema}
    for col, unit in units.items():
        if col.endswith(("psfFlux", "psfFluxErr", "apFlux", "apFluxErr", "psfFluxMean", "psfFluxMeanErr")):
            assert unit == "nJy", col
        if col in ("ra", "dec", "coord_ra", "coord_dec"):
            assert unit == "deg"
        if col.endswith("Mjd") or col.startswith("midpointMjd"):
            assert unit == "d"


def test_schema_for_errors():
    with pytest.raises(InputError, match="unknown release table"):
        S.schema_for("Objects")
    with pytest.raises(InputError, match="bands"):
        S.schema_for("Object")
    with pytest.raises(InputError, match="distinct"):
        S.object_schema(["g", "g"])


def test_conform_selects_orders_casts_and_fills():
    n = 4
    data = {f.name: np.arange(n) for f in S.CCD_VISIT_SCHEMA if (f.metadata or {}).get(b"optional") != b"1"}
    data["band"] = ["g"] * n
    data["rawPath"] = ["/tmp/x"] * n  # extra column: dropped
    t = pa.table(dict(reversed(list(data.items()))))
    out = S.conform(t, S.CCD_VISIT_SCHEMA)
    assert out.schema.names == S.CCD_VISIT_SCHEMA.names
    assert out.schema.field("detector").type == pa.int32()
    assert out["status"].null_count == n
    assert out.schema.field("seeing").metadata[b"unit"] == b"arcsec"


def test_conform_names_missing_and_bad_columns():
    t = pa.table({"sourceId": [1], "objectId": [2]})
    with pytest.raises(InputError, match="ccdVisitId"):
        S.conform(t, S.SOURCE_SCHEMA)
    src = {f.name: [1.5] for f in S.SOURCE_SCHEMA if f.name != "_healpix_29"}
    src["band"] = ["g"]
    with pytest.raises(InputError, match="sourceId"):
        S.conform(pa.table(src), S.SOURCE_SCHEMA)  # 1.5 cannot become an int64 id


@given(st.lists(st.sampled_from(list("ugrizyYJHK")), unique=True, min_size=1, max_size=6))
def test_object_schema_any_bands(bands):
    s = S.object_schema(bands)
    assert len(s) == 10 + 6 * len(bands)
    assert len(set(s.names)) == len(s.names)
