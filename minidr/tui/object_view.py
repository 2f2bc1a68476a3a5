"""The Object view: per-band statistics, light curve, detections and a calexp cutout."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static, TabbedContent, TabPane
from textual_plotext import PlotextPlot

from ..errors import MinidrError
from ._format import cell_text, one_line
from .cutout import CutoutView, cut
from .results import ResultsTable

BAND_COLORS = {"u": "magenta", "g": "green", "r": "red", "i": "orange", "z": "cyan", "y": "blue"}
DETECTION_COLUMNS = ("visit", "detector", "band", "midpointMjdTai", "psfFlux", "psfFluxErr", "snr", "x", "y", "flags")
CUTOUT_HALF = 15  # pixels each side of the Source


def sexagesimal(ra: float, dec: float) -> str:
    h = (ra % 360.0) / 15.0
    hh, rem = divmod(h * 3600.0, 3600.0)
    mm, ss = divmod(rem, 60.0)
    sign = "-" if dec < 0 else "+"
    d = abs(dec) * 3600.0
    dd, rem = divmod(d, 3600.0)
    dm, ds = divmod(rem, 60.0)
    return f"{int(hh):02d}:{int(mm):02d}:{ss:05.2f} {sign}{int(dd):02d}:{int(dm):02d}:{ds:04.1f}"


def stat_text(v, kind: str) -> str:
    """A per-band statistic for people: fluxes [nJy] with thousands separators or 4 digits,
    magnitudes to 0.001, chi-square to 3 digits."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return cell_text(v)
    if kind == "int":
        return str(v)
    if kind == "mag":
        return f"{v:.3f}"
    if kind == "chi2":
        return f"{v:.3g}" if abs(v) < 1e4 else f"{v:,.0f}"
    return f"{v:,.0f}" if abs(v) >= 1e4 else f"{v:.4g}"


def bands_of(schema: pa.Schema) -> list[str]:
    order = "ugrizy"
    bands = [n[: -len("_psfFluxMean")] for n in schema.names if n.endswith("_psfFluxMean")]
    return sorted(bands, key=lambda b: (order.find(b) if b in order else 99, b))


def lightcurve_points(lc: pa.Table) -> dict[str, dict[str, np.ndarray]]:
    """Per band: Source points (``det``), ForcedSource points (``forced``) and which forced
    points are non-detections (no Source of the Object in that visit)."""
    out: dict[str, dict[str, np.ndarray]] = {}
    if lc.num_rows == 0:
        return out
    # to_pylist, not to_numpy: converting strings to numpy loads pandas (a second at first use)
    d = {k: np.array(lc.column(k).to_pylist(), dtype=object if k in ("kind", "band") else float)
         for k in ("kind", "band", "midpointMjdTai", "psfFlux", "psfFluxErr")}
    visits = np.array(lc.column("visit").to_pylist()) if "visit" in lc.column_names else np.zeros(lc.num_rows)
    detected_visits = set(visits[d["kind"] == "source"].tolist())
    for band in sorted(set(d["band"].tolist()), key=lambda b: ("ugrizy".find(b), b)):
        for kind, key in (("source", "det"), ("forced", "forced")):
            m = (d["band"] == band) & (d["kind"] == kind)
            pts = {"t": d["midpointMjdTai"][m].astype(float), "f": d["psfFlux"][m].astype(float),
                   "e": d["psfFluxErr"][m].astype(float)}
            if kind == "forced":
                pts["nondet"] = np.array([v not in detected_visits for v in visits[m].tolist()], dtype=bool)
            out.setdefault(band, {})[key] = pts
    return out


AB_ZERO_POINT = 31.4  # mag of 1 nJy
LIMIT_SIGMA = 5.0  # non-detections in magnitudes: upper limits at 5 sigma


def in_magnitudes(points: dict) -> dict:
    """The same points in AB magnitudes: positive fluxes only (errors 1.0857 e/f); forced
    non-detections become upper limits at ``LIMIT_SIGMA`` times their flux error."""
    out = {}
    for band, kinds in points.items():
        out[band] = {}
        for key, p in kinds.items():
            f, e, t = p["f"], p["e"], p["t"]
            q = {}
            if key == "forced":
                nd = p["nondet"]
                ok = (f > 0) & ~nd
                lim = nd & (e > 0)
                q["lim_t"] = t[lim]
                q["lim"] = -2.5 * np.log10(LIMIT_SIGMA * e[lim]) + AB_ZERO_POINT
                q["nondet"] = np.zeros(int(ok.sum()), dtype=bool)
            else:
                ok = f > 0
            q["t"] = t[ok]
            q["f"] = -2.5 * np.log10(f[ok]) + AB_ZERO_POINT
            q["e"] = 2.5 / np.log(10.0) * e[ok] / f[ok]
            out[band][key] = q
    return out


def _negated(points: dict) -> dict:
    return {b: {k: {n: (-v if n in ("f", "lim") else v) for n, v in p.items()} for k, p in kinds.items()}
            for b, kinds in points.items()}


class LightCurvePlot(PlotextPlot):
    """psfFlux [nJy] (or AB mag) against MJD per band: Sources with error bars (●),
    ForcedSources (·) and forced non-detections (× in flux, ▼ upper limits in magnitudes)."""

    def show(self, points: dict, mags: bool = False) -> None:
        plt = self.plt
        plt.clear_figure()
        plt.xlabel("MJD")
        plt.ylabel("AB mag" if mags else "psfFlux [nJy]")
        sign = 1.0
        if mags:
            # brighter up: plot -mag and label the axis with mag (plotext's yreverse does not flip)
            points, sign = _negated(in_magnitudes(points)), -1.0
        t_all = []
        for band, kinds in points.items():
            color = BAND_COLORS.get(band, "gray")
            det = kinds.get("det")
            if det is not None and det["t"].size:
                plt.error(det["t"].tolist(), det["f"].tolist(), yerr=det["e"].tolist(), color=color)
                plt.scatter(det["t"].tolist(), det["f"].tolist(), marker="●", color=color, label=f"{band} Source")
                t_all.extend(det["t"].tolist())
            forced = kinds.get("forced")
            if forced is not None and forced["t"].size:
                nd = forced["nondet"]
                if (~nd).any():
                    plt.scatter(forced["t"][~nd].tolist(), forced["f"][~nd].tolist(), marker="·", color=color)
                if nd.any():
                    plt.error(forced["t"][nd].tolist(), forced["f"][nd].tolist(), yerr=forced["e"][nd].tolist(),
                              color=color)
                    plt.scatter(forced["t"][nd].tolist(), forced["f"][nd].tolist(), marker="×", color=color,
                                label=f"{band} forced, no det")
                t_all.extend(forced["t"].tolist())
            if forced is not None and forced.get("lim_t") is not None and forced["lim_t"].size:
                plt.scatter(forced["lim_t"].tolist(), forced["lim"].tolist(), marker="▼", color=color,
                            label=f"{band} {LIMIT_SIGMA:g}σ limit")
                t_all.extend(forced["lim_t"].tolist())
        if not t_all:
            plt.title("no Source or ForcedSource rows")
        elif mags:
            ys = [v for kinds in points.values() for p in kinds.values() for k in ("f", "lim") if k in p
                  for v in p[k].tolist()]
            if ys:
                lo, hi = min(ys), max(ys)
                ticks = np.linspace(lo, hi, 5) if hi > lo else np.array([lo])
                plt.yticks(ticks.tolist(), [f"{sign * t:.2f}" for t in ticks])
        self.refresh()


class ObjectScreen(Screen):
    """One Object of the release. Esc goes back."""

    BINDINGS = [
        Binding("escape,q", "app.pop_screen", "Back"),
        Binding("l", "tab('lc')", "Light curve"),
        Binding("d", "tab('det')", "Detections"),
        Binding("c", "tab('cut')", "Cutout"),
        Binding("m", "toggle_mags", "mag/flux"),
    ]

    def __init__(self, release, object_id: int, repo: Path | None) -> None:
        super().__init__()
        self.release = release
        self.object_id = int(object_id)
        self.repo = repo
        self.lightcurve: pa.Table | None = None
        self.object_row: dict | None = None
        self.cutout_info = ""
        self.points: dict | None = None
        self.mags = False

    def compose(self) -> ComposeResult:
        yield Static(Text(f"Object {self.object_id}  loading…", style="bold"), id="object-title")
        yield DataTable(id="object-stats", cursor_type="row", zebra_stripes=True)
        with TabbedContent(id="object-tabs", initial="lc"):
            with TabPane("Light curve", id="lc"):
                yield LightCurvePlot(id="object-lc")
            with TabPane("Detections", id="det"):
                yield ResultsTable(id="object-detections")
            with TabPane("Cutout", id="cut"):
                with Horizontal():
                    yield CutoutView(id="object-cutout")
                    yield Static("reading the calexp…", id="object-cutout-info")
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    def action_toggle_mags(self) -> None:
        self.mags = not self.mags
        if self.points is not None:
            self.query_one("#object-lc", LightCurvePlot).show(self.points, self.mags)

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    @work(thread=True, exclusive=True, group="object", exit_on_error=False)
    def load(self) -> None:
        try:
            obj = self.release.sql(f"SELECT * FROM Object WHERE objectId = {self.object_id}", max_rows=1)
            lc = self.release.lightcurve(self.object_id)
        except Exception as exc:  # noqa: BLE001 - shown on the screen, never a crash
            self.app.call_from_thread(self._show_error, one_line(exc))
            return
        self.app.call_from_thread(self._show, obj, lc)
        try:
            info, pixels = self.cutout_for(lc)
        except Exception as exc:  # noqa: BLE001
            info, pixels = f"no cutout: {one_line(exc)}", None
        self.app.call_from_thread(self._show_cutout, info, pixels)

    def _show_error(self, message: str) -> None:
        if not self.is_attached:  # the user went back before the data came
            return
        self.query_one("#object-title", Static).update(Text(f"Object {self.object_id}: {message}", style="bold red"))

    def _show(self, obj: pa.Table, lc: pa.Table) -> None:
        self.lightcurve = lc
        if not self.is_attached:
            return
        title = self.query_one("#object-title", Static)
        if obj.num_rows == 0:
            title.update(Text(f"Object {self.object_id}: not in the Object table", style="bold red"))
        else:
            row = obj.to_pylist()[0]
            self.object_row = row
            ra, dec = row.get("coord_ra"), row.get("coord_dec")
            t = Text()
            t.append(f"Object {self.object_id}", style="bold")
            if ra is not None and dec is not None:
                t.append(f"  {ra:.6f} {dec:+.6f}  ({sexagesimal(ra, dec)})")
            if row.get("nDetections") is not None:
                t.append(f"  nDet {row['nDetections']}", style="dim")
            if row.get("refExtendedness") is not None:
                t.append(f"  ext {row['refExtendedness']:.2g}", style="dim")
            title.update(t)
            self._fill_stats(obj.schema, row)
        self.points = lightcurve_points(lc)
        self.query_one("#object-lc", LightCurvePlot).show(self.points, self.mags)
        det = lc.filter(pc.equal(lc.column("kind"), "source")) if lc.num_rows else lc
        cols = [c for c in DETECTION_COLUMNS if c in det.column_names]
        self.query_one("#object-detections", ResultsTable).show(det.select(cols))

    def _fill_stats(self, schema: pa.Schema, row: dict) -> None:
        table = self.query_one("#object-stats", DataTable)
        table.clear(columns=True)
        heads = [("band", False), ("psfFluxMean nJy", True), ("± err", True), ("psfMag", True), ("sigma", True),
                 ("chi2", True), ("Ndata", True)]
        for h, num in heads:
            table.add_column(Text(h, justify="right" if num else "left", style="bold"))
        for b in bands_of(schema):
            vals = [row.get(f"{b}_{k}") for k in ("psfFluxMean", "psfFluxMeanErr", "psfMag", "psfFluxSigma",
                                                    "psfFluxChi2", "psfFluxNdata")]
            cells = [Text(b, style=f"bold {BAND_COLORS.get(b, '')}".strip())]
            kinds = ["flux", "flux", "mag", "flux", "chi2", "int"]
            for v, kind in zip(vals, kinds):
                cells.append(Text(stat_text(v, kind), justify="right"))
            table.add_row(*cells)

    # -- cutout -----------------------------------------------------------------------

    def cutout_for(self, lc: pa.Table):
        """(text, pixels or None): the calexp around the Object's best Source (highest S/N)."""
        if self.repo is None:
            return "no repository next to this release: no calexp to cut", None
        need = {"kind", "visit", "detector", "x", "y"}
        if lc.num_rows == 0 or not need <= set(lc.column_names):
            return "no Source with visit, detector, x, y", None
        rows = [r for r in lc.to_pylist() if r["kind"] == "source" and r["x"] is not None]
        if not rows:
            return "no Source rows: nothing to cut", None
        rows.sort(key=lambda r: -(r.get("snr") or 0.0))
        from ..repo.layout import calexp_path
        from ..repo.store import read_calexp

        for r in rows:
            path = calexp_path(self.repo, int(r["visit"]), int(r["detector"]))
            if not path.is_file():
                continue
            try:
                exp = read_calexp(path)
            except MinidrError as exc:
                return f"{one_line(exc)}", None
            pixels = cut(exp.image, float(r["x"]), float(r["y"]), CUTOUT_HALF)
            n = 2 * CUTOUT_HALF + 1
            info = (f"visit {r['visit']}  detector {r['detector']}  band {r.get('band', '?')}\n"
                    f"x {r['x']:.1f}  y {r['y']:.1f}  S/N {_num(r.get('snr'), '.1f')}\n"
                    f"{n}×{n} px, asinh stretch\n"
                    f"{path.relative_to(self.repo)}")
            return info, pixels
        return f"no calexp in {self.repo.name}/processed for the Sources of this Object", None

    def _show_cutout(self, info: str, pixels) -> None:
        self.cutout_info = info
        if not self.is_attached:
            return
        self.query_one("#object-cutout-info", Static).update(Text(info))
        self.query_one("#object-cutout", CutoutView).set_image(pixels)


def _num(v, fmt: str) -> str:
    return format(v, fmt) if isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v)) else cell_text(v)
