-- Pairs of Objects closer than 5 arcsec (run by HEALPix neighbourhood, not a cross product).
-- dialect: duckdb
-- expect: neighbour_join
SELECT o1.objectId AS id1, o2.objectId AS id2,
       ang_sep(o1.coord_ra, o1.coord_dec, o2.coord_ra, o2.coord_dec) * 3600 AS sep_arcsec
FROM Object o1, Object o2
WHERE ang_sep(o1.coord_ra, o1.coord_dec, o2.coord_ra, o2.coord_dec) < 5.0 / 3600
  AND o1.objectId < o2.objectId
ORDER BY sep_arcsec
LIMIT 100
