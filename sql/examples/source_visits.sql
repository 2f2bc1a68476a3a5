-- The detections of the brightest g-band Object with their frame's seeing and zero point.
-- dialect: duckdb
SELECT s.midpointMjdTai, s.band, s.psfFlux, s.psfFluxErr, c.seeing, c.zeroPoint
FROM Source s
JOIN CcdVisit c ON c.ccdVisitId = s.ccdVisitId
WHERE s.objectId = (SELECT objectId FROM Object ORDER BY g_psfFluxMean DESC NULLS LAST LIMIT 1)
ORDER BY s.midpointMjdTai
