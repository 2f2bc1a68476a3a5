-- minidr spatial SQL functions: DuckDB macros, loaded into every Release connection.
-- Angles are in degrees; functions named scisql_* follow Qserv's argument order and return 1/0.
-- polygon(ra, dec, [ra1, dec1, ra2, dec2, ...]) and __hpx_* helpers are vectorised Python/numba
-- UDFs registered by minidr/query/udfs.py.

-- Angular separation [deg], Vincenty (atan2) form: accurate from 0 to 180 degrees.
CREATE OR REPLACE MACRO ang_sep(ra1, dec1, ra2, dec2) AS degrees(atan2(
    sqrt(pow(cos(radians(dec2)) * sin(radians(ra2 - ra1)), 2)
         + pow(cos(radians(dec1)) * sin(radians(dec2))
               - sin(radians(dec1)) * cos(radians(dec2)) * cos(radians(ra2 - ra1)), 2)),
    sin(radians(dec1)) * sin(radians(dec2))
        + cos(radians(dec1)) * cos(radians(dec2)) * cos(radians(ra2 - ra1))));

-- True when (ra, dec) is within radius_deg of (ra0, dec0): haversine inequality, exact and cheap.
CREATE OR REPLACE MACRO cone(ra, dec, ra0, dec0, radius_deg) AS
    CASE WHEN radius_deg >= 180 THEN (ra IS NOT NULL AND dec IS NOT NULL)
    ELSE pow(sin(radians(dec - dec0) / 2), 2)
         + cos(radians(dec)) * cos(radians(dec0)) * pow(sin(radians(ra - ra0) / 2), 2)
         <= pow(sin(radians(radius_deg) / 2), 2)
    END;

-- RA reduced to [0, 360).
CREATE OR REPLACE MACRO ra_norm(x) AS x - 360.0 * floor(x / 360.0);

-- True when dec_min <= dec <= dec_max and RA is in [ra_min, ra_max];
-- ra_min > ra_max (after reduction to [0, 360)) means the box crosses RA = 0.
CREATE OR REPLACE MACRO box(ra, dec, ra_min, dec_min, ra_max, dec_max) AS
    (dec BETWEEN dec_min AND dec_max) AND (
        CASE WHEN ra_max - ra_min >= 360 THEN ra IS NOT NULL
             WHEN ra_norm(ra_min) <= ra_norm(ra_max)
                 THEN ra_norm(ra) BETWEEN ra_norm(ra_min) AND ra_norm(ra_max)
             ELSE ra_norm(ra) >= ra_norm(ra_min) OR ra_norm(ra) <= ra_norm(ra_max)
        END);

-- Qserv / scisql compatible forms.
CREATE OR REPLACE MACRO scisql_angSep(ra1, dec1, ra2, dec2) AS ang_sep(ra1, dec1, ra2, dec2);
CREATE OR REPLACE MACRO scisql_s2PtInCircle(ra, dec, ra0, dec0, radius_deg) AS
    CAST(cone(ra, dec, ra0, dec0, radius_deg) AS INTEGER);
CREATE OR REPLACE MACRO scisql_s2PtInBox(ra, dec, ra_min, dec_min, ra_max, dec_max) AS
    CAST(box(ra, dec, ra_min, dec_min, ra_max, dec_max) AS INTEGER);

-- Magnitudes: AB mag of a flux in nJy (mag = -2.5 log10(f) + 31.4; NULL when f <= 0),
-- and its 1-sigma error from the flux error.
CREATE OR REPLACE MACRO scisql_nanojanskyToAbMag(f) AS
    CASE WHEN f > 0 THEN -2.5 * log10(f) + 31.4 END;
CREATE OR REPLACE MACRO scisql_nanojanskyToAbMagSigma(f, fErr) AS
    CASE WHEN f <> 0 THEN 2.5 / ln(10) * abs(fErr / f) END;
