-- Source counts, median AB magnitude and median seeing per band.
-- dialect: duckdb
SELECT s.band, count(*) AS n_sources,
       median(scisql_nanojanskyToAbMag(s.psfFlux)) AS median_mag,
       median(v.seeing) AS median_seeing_arcsec
FROM Source s
JOIN Visit v ON v.visit = s.visit
GROUP BY s.band
ORDER BY s.band
