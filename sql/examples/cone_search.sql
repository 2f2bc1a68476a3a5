-- Objects within 30 arcmin of (RA, Dec) = (0.2, 10.0) deg, nearest first.
-- dialect: duckdb
-- expect: pruned
SELECT objectId, coord_ra, coord_dec, g_psfMag, r_psfMag,
       ang_sep(coord_ra, coord_dec, 0.2, 10.0) * 3600 AS sep_arcsec
FROM Object
WHERE cone(coord_ra, coord_dec, 0.2, 10.0, 0.5)
ORDER BY sep_arcsec
LIMIT 20
