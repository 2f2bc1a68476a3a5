-- Qserv style: an area restriction on the FROM table, scisql functions, MySQL LIMIT.
-- dialect: qserv
-- expect: pruned
SELECT `objectId`, coord_ra, coord_dec,
       scisql_nanojanskyToAbMag(g_psfFluxMean) AS g_mag,
       scisql_nanojanskyToAbMagSigma(g_psfFluxMean, g_psfFluxMeanErr) AS g_magErr
FROM Object
WHERE qserv_areaspec_circle(0.2, 10.0, 0.5)
  AND scisql_s2PtInCPoly(coord_ra, coord_dec, 359.5, 9.5, 0.9, 9.5, 0.9, 10.5, 359.5, 10.5) = 1
LIMIT 0, 20
