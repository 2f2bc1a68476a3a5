-- The ADQL form of a cone search (minidr sql REPO "$(cat adql_cone.sql)" --dialect adql).
-- dialect: adql
-- expect: pruned
SELECT TOP 20 objectId, coord_ra, coord_dec,
       DISTANCE(POINT('ICRS', coord_ra, coord_dec), POINT('ICRS', 0.2, 10.0)) AS dist_deg
FROM Object
WHERE CONTAINS(POINT('ICRS', coord_ra, coord_dec), CIRCLE('ICRS', 0.2, 10.0, 0.5)) = 1
ORDER BY dist_deg
