-- Blue point sources in an RA/Dec box that crosses RA = 0 (ra_min > ra_max).
-- dialect: duckdb
-- expect: pruned
SELECT objectId, coord_ra, coord_dec, g_psfMag - r_psfMag AS g_r
FROM Object
WHERE box(coord_ra, coord_dec, 358.0, -20.0, 2.0, 20.0)
  AND refExtendedness = 0
  AND g_psfMag - r_psfMag < 0.5
ORDER BY g_r
LIMIT 50
