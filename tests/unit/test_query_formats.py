"""Output formats: golden bytes on a tiny table (regenerate with MINIDR_UPDATE_GOLDEN=1)."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.io import fits

from minidr.errors import QueryError
from minidr.query.formats import FORMATS, render

GOLDEN = Path(__file__).parent / "golden_query_formats"


def tiny() -> pa.Table:
    def f(name, typ, unit="", desc=""):
        return pa.field(name, typ, metadata={b"unit": unit.encode(), b"description": desc.encode()})

    schema = pa.schema([
        f("objectId", pa.int64(), "", "unique id"),
        f("coord_ra", pa.float64(), "deg", "right ascension"),
        f("band", pa.string()),
        f("psfFlux", pa.float64(), "nJy", "PSF flux"),
        f("nDetections", pa.int64()),
        f("good", pa.bool_()),
    ], metadata={b"truncated": b"false"})
    return pa.Table.from_pydict({
        "objectId": [1, 22, 333],
        "coord_ra": [0.1, 359.999999, 123.456789012345],
        "band": ["g", "r", "i, \"z\""],
        "psfFlux": [1234.5, None, float("nan")],
        "nDetections": [3, None, 1],
        "good": [True, False, None],
    }, schema=schema)


@pytest.mark.parametrize("fmt", FORMATS)
def test_golden_bytes(fmt):
    data = render(tiny(), fmt)
    path = GOLDEN / f"tiny.{fmt if fmt != 'table' else 'txt'}"
    if os.environ.get("MINIDR_UPDATE_GOLDEN"):
        path.write_bytes(data)
    assert data == path.read_bytes(), f"{fmt} output changed (MINIDR_UPDATE_GOLDEN=1 to accept)"
    assert render(tiny(), fmt) == data  # deterministic


def test_text_csv_json_content():
    text = render(tiny(), "table").decode().splitlines()
    assert text[0].split() == ["objectId", "coord_ra", "band", "psfFlux", "nDetections", "good"]
    assert "[deg]" in text[1] and "[nJy]" in text[1]
    assert "NULL" in text[4]
    lines = render(tiny(), "csv").decode().splitlines()
    assert lines[0] == "objectId,coord_ra,band,psfFlux,nDetections,good"
    assert lines[1] == "1,0.1,g,1234.5,3,true"
    assert lines[3].startswith('333,123.456789012345,"i, ""z""",NaN,1,')
    rows = json.loads(render(tiny(), "json"))
    assert rows[1] == {"objectId": 22, "coord_ra": 359.999999, "band": "r", "psfFlux": None, "nDetections": None,
                       "good": False}
    assert rows[2]["psfFlux"] is None


def test_parquet_and_fits_keep_units():
    t = pq.read_table(io.BytesIO(render(tiny(), "parquet")))
    assert t.schema.field("coord_ra").metadata[b"unit"] == b"deg"
    assert t.to_pylist()[0]["objectId"] == 1
    with fits.open(io.BytesIO(render(tiny(), "fits"))) as hdul:
        h = hdul[1].header
        assert h["TUNIT2"] == "deg" and h["TUNIT4"] == "nJy"
        d = hdul[1].data
        assert list(d["objectId"]) == [1, 22, 333]
        assert np.isnan(d["psfFlux"][1]) and d["band"][2] == 'i, "z"'
        assert d["nDetections"][1] == h["TNULL5"]


def test_empty_table_and_unknown_format():
    empty = tiny().slice(0, 0)
    assert render(empty, "csv") == b"objectId,coord_ra,band,psfFlux,nDetections,good\n"
    assert render(empty, "json") == b"[]\n"
    with fits.open(io.BytesIO(render(empty, "fits"))) as hdul:
        assert len(hdul[1].data) == 0
    with pytest.raises(QueryError, match="unknown format"):
        render(empty, "xml")
