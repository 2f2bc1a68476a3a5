-- minidr registry (REPO/registry.duckdb): what is ingested, built, processed and released.
-- Written only by minidr/repo/registry.py. Paths are absolute; times are UTC.

CREATE TABLE IF NOT EXISTS meta (
    key     VARCHAR PRIMARY KEY,
    value   VARCHAR NOT NULL
);

-- One row per raw file (one exposure of one detector).
CREATE TABLE IF NOT EXISTS raw (
    visit       BIGINT  NOT NULL,            -- EXPID
    detector    INTEGER NOT NULL,            -- DETECTOR or CCDNUM
    path        VARCHAR NOT NULL,            -- absolute path of the raw file
    sha256      VARCHAR NOT NULL,            -- hex sha256 of the file's bytes
    size        BIGINT  NOT NULL,            -- bytes
    imagetyp    VARCHAR NOT NULL,            -- science | bias | dark | flat
    exptime     DOUBLE  NOT NULL,            -- s
    mjd         DOUBLE  NOT NULL,            -- MJD at the start of the exposure
    band        VARCHAR,                     -- NULL for bias and dark
    instrument  VARCHAR NOT NULL,
    ra          DOUBLE,                      -- pointing, deg
    dec         DOUBLE,                      -- pointing, deg
    ny          INTEGER NOT NULL,            -- assembled detector rows
    nx          INTEGER NOT NULL,            -- assembled detector columns
    bitpix      INTEGER NOT NULL,
    amps        VARCHAR NOT NULL,            -- JSON list of AmpInfo (0-based sections)
    wcs_header  VARCHAR,                     -- JSON dict of the approximate TAN WCS (science)
    ingested_at TIMESTAMP NOT NULL,
    PRIMARY KEY (visit, detector)
);

-- Master calibrations; band is NULL for bias and dark.
CREATE TABLE IF NOT EXISTS calib (
    kind        VARCHAR NOT NULL,            -- bias | dark | flat
    detector    INTEGER NOT NULL,
    band        VARCHAR,
    path        VARCHAR NOT NULL,
    inputs      VARCHAR NOT NULL,            -- JSON list of raw paths that went in
    created_at  TIMESTAMP NOT NULL
);

-- Processing status of each science frame.
CREATE TABLE IF NOT EXISTS frame (
    visit       BIGINT  NOT NULL,
    detector    INTEGER NOT NULL,
    status      VARCHAR NOT NULL,            -- done | failed
    message     VARCHAR,
    n_sources   INTEGER,
    updated_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (visit, detector)
);

-- Published releases, in the order they were made.
CREATE TABLE IF NOT EXISTS release (
    seq         INTEGER NOT NULL,
    name        VARCHAR PRIMARY KEY,
    path        VARCHAR NOT NULL,
    n_objects   BIGINT,
    n_sources   BIGINT,
    created_at  TIMESTAMP NOT NULL
);

-- The reference catalog (at most one row: the latest ingested).
CREATE TABLE IF NOT EXISTS refcat (
    path        VARCHAR NOT NULL,            -- REPO/refcat/refcat.parquet
    source      VARCHAR NOT NULL,            -- the file it was converted from
    sha256      VARCHAR NOT NULL,            -- of the source file
    n_rows      BIGINT  NOT NULL,
    bands       VARCHAR NOT NULL,            -- JSON list of bands with a magnitude column
    ingested_at TIMESTAMP NOT NULL
);
