"""The help pane (F1, or ? outside the editor): keys and the spatial SQL of a release."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

HELP = """\
# minidr explore

| Key | Does |
|---|---|
| ctrl+j, ctrl+enter | run the query (the selection, or the statement under the cursor) |
| Esc | cancel the running query |
| ctrl+up / ctrl+down | older / newer query from the history (F8: the list) |
| F2 / F5 / F6 | focus the editor / results / release browser |
| Enter (browser) | insert the column's name into the editor; open another release |
| Enter (results) | open the Object of the row (its stats, light curve, detections, cutout) |
| F3 | cone search (RA/Dec in degrees or `10:12:45.3 +02:03:04`, radius in arcsec) |
| F4 | sky view: Objects per 5° cell; Enter queries the cell |
| ctrl+e | export the result to .csv, .parquet, .json or .fits |
| F1, ? | this help;  ctrl+p: commands (themes: light/dark) |
| ctrl+q | quit |

## Tables
`Object`, `Source`, `ForcedSource`, `Visit`, `CcdVisit` (positions in degrees,
fluxes in nJy, `<b>_psfMag` in AB). Results are capped (`query.max_rows`); the status
line says **truncated** when the cap was hit. Queries are read-only.

## Spatial SQL
| Function | Result |
|---|---|
| `ang_sep(ra1, dec1, ra2, dec2)` | separation in degrees |
| `cone(ra, dec, ra0, dec0, radius_deg)` | true inside the circle |
| `box(ra, dec, ra_min, dec_min, ra_max, dec_max)` | true inside (RA wraps at 0/360) |
| `polygon(ra, dec, [ra1, dec1, ra2, dec2, ...])` | true inside |
| `scisql_angSep`, `scisql_s2PtInCircle`, `scisql_s2PtInBox`, `scisql_s2PtInCPoly` | Qserv forms |
| `scisql_nanojanskyToAbMag(f)`, `scisql_nanojanskyToAbMagSigma(f, fErr)` | AB magnitudes |

A WHERE that limits the sky reads only the partitions that overlap it.

```sql
SELECT objectId, coord_ra, coord_dec, r_psfMag
FROM Object
WHERE cone(coord_ra, coord_dec, 10.0, 2.0, 0.1)
ORDER BY r_psfMag LIMIT 20
```
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,f1,q,question_mark", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Markdown(HELP)
