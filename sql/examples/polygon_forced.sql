-- Forced photometry of the Objects inside a concave (L-shaped) polygon.
-- dialect: duckdb
-- expect: pruned
SELECT f.objectId, f.band, f.midpointMjdTai, f.psfFlux, f.psfFluxErr
FROM ForcedSource f
WHERE polygon(f.coord_ra, f.coord_dec, [358.0, 8.0, 2.0, 8.0, 2.0, 9.0, 0.0, 9.0, 0.0, 12.0, 358.0, 12.0])
ORDER BY f.objectId, f.midpointMjdTai
LIMIT 200
