"""MINICAM: the simulated focal plane (detectors in a grid with gaps, amplifiers, electronics).

Conventions: pixel coordinates 0-based with pixel centres at integers, arrays ``[y, x]``;
focal-plane coordinates are in pixels (0.2 arcsec) with the optical axis at (0, 0).
Amplifier sections here are 0-based half-open; they become 1-based inclusive IRAF strings
only in :func:`iraf_section` when headers are written.

Each amplifier's raw array is stored in *read-out order*: a few prescan columns (4-amp
detectors only), the data columns, then the serial overscan (BIASSEC). An amplifier that
reads out from the far side (``flip_x`` / ``flip_y``) has its pixel array reversed with
respect to the assembled detector, and its DETSEC runs backwards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

PIXEL_SCALE = 0.2
"""arcsec per pixel."""

INSTRUMENT = "MINICAM"


@dataclass(frozen=True)
class AmpGeom:
    """One amplifier: its place in the detector and its electronics."""

    name: str
    y0: int           #: detector rows [y0, y1) (0-based, half-open)
    y1: int
    x0: int           #: detector columns [x0, x1)
    x1: int
    flip_x: bool      #: reads out from the right: raw columns run right-to-left
    flip_y: bool      #: reads out from the top: raw rows run top-to-bottom
    prescan: int      #: non-illuminated columns read before the data
    overscan: int     #: serial overscan columns read after the data (BIASSEC)
    gain: float       #: e-/ADU
    rdnoise: float    #: read noise, e-
    bias: float       #: mean bias level, ADU
    saturate: float   #: ADC / full-well clip level, ADU

    @property
    def data_shape(self) -> tuple[int, int]:
        return (self.y1 - self.y0, self.x1 - self.x0)

    @property
    def raw_shape(self) -> tuple[int, int]:
        ny, nx = self.data_shape
        return (ny, self.prescan + nx + self.overscan)

    @property
    def full_well(self) -> float:
        """Electrons at which a pixel reaches SATURATE (charge beyond it bleeds along the column)."""
        return (self.saturate - self.bias) * self.gain * 1.01

    # IRAF 1-based inclusive sections of the header
    def datasec(self) -> str:
        ny, nx = self.data_shape
        return iraf_section(self.prescan + 1, self.prescan + nx, 1, ny)

    def biassec(self) -> str:
        ny, nx = self.data_shape
        return iraf_section(self.prescan + nx + 1, self.prescan + nx + self.overscan, 1, ny)

    def detsec(self) -> str:
        xa, xb = (self.x1, self.x0 + 1) if self.flip_x else (self.x0 + 1, self.x1)
        ya, yb = (self.y1, self.y0 + 1) if self.flip_y else (self.y0 + 1, self.y1)
        return iraf_section(xa, xb, ya, yb)

    def to_raw(self, det_pixels: np.ndarray) -> np.ndarray:
        """This amplifier's data block of an assembled detector array, in read-out order."""
        block = det_pixels[self.y0:self.y1, self.x0:self.x1]
        if self.flip_x:
            block = block[:, ::-1]
        if self.flip_y:
            block = block[::-1, :]
        return block


@dataclass(frozen=True)
class DetectorGeom:
    """One detector: size, place in the focal plane and amplifiers."""

    detector: int            #: DETECTOR number (1-based, as CCDNUM)
    ny: int
    nx: int
    fp_x0: float             #: focal-plane x (pixels) of the detector's pixel (0, 0)
    fp_y0: float
    amps: tuple[AmpGeom, ...]

    @property
    def shape(self) -> tuple[int, int]:
        return (self.ny, self.nx)

    def amp_map(self, attr: str) -> np.ndarray:
        """A per-pixel map of an amplifier attribute (e.g. 'gain') over the detector."""
        out = np.empty(self.shape, dtype=np.float64)
        for a in self.amps:
            out[a.y0:a.y1, a.x0:a.x1] = getattr(a, attr)
        return out


@dataclass(frozen=True)
class Camera:
    detectors: tuple[DetectorGeom, ...]
    pixel_scale: float = PIXEL_SCALE

    @property
    def fp_radius(self) -> float:
        """Focal-plane radius in pixels (the farthest detector corner from the axis)."""
        r = 0.0
        for d in self.detectors:
            for x in (d.fp_x0, d.fp_x0 + d.nx):
                for y in (d.fp_y0, d.fp_y0 + d.ny):
                    r = max(r, math.hypot(x, y))
        return r

    def fp_extent(self) -> tuple[float, float, float, float]:
        """(xmin, xmax, ymin, ymax) of the focal plane, in pixels."""
        xs = [d.fp_x0 for d in self.detectors] + [d.fp_x0 + d.nx for d in self.detectors]
        ys = [d.fp_y0 for d in self.detectors] + [d.fp_y0 + d.ny for d in self.detectors]
        return min(xs), max(xs), min(ys), max(ys)


def iraf_section(x1: int, x2: int, y1: int, y2: int) -> str:
    """1-based inclusive IRAF section string ``[x1:x2,y1:y2]`` (may run backwards)."""
    return f"[{x1}:{x2},{y1}:{y2}]"


def make_camera(n_detectors: int, shape: tuple[int, int], seed: int) -> Camera:
    """A grid of ``n_detectors`` detectors of ``shape`` (ny, nx) with gaps.

    Odd detectors have 2 amplifiers (left/right, the right one reading out backwards in x);
    even detectors have 4 (2x2, with x, y and xy flips, 4 prescan columns). Gains, read
    noise, bias levels and saturation differ per amplifier, drawn from ``seed``.
    """
    ny, nx = shape
    ncol = math.ceil(math.sqrt(n_detectors))
    nrow = math.ceil(n_detectors / ncol)
    gap_x = max(20, int(round(0.05 * nx)))
    gap_y = max(20, int(round(0.05 * ny)))
    width = ncol * nx + (ncol - 1) * gap_x
    height = nrow * ny + (nrow - 1) * gap_y
    dets = []
    for i in range(n_detectors):
        det = i + 1
        row, col = divmod(i, ncol)
        fx0 = -width / 2.0 + col * (nx + gap_x)
        fy0 = -height / 2.0 + row * (ny + gap_y)
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0xCA3E7A, det]))
        amps = _amps(det, ny, nx, rng)
        dets.append(DetectorGeom(det, ny, nx, fx0, fy0, amps))
    return Camera(tuple(dets))


def _amps(det: int, ny: int, nx: int, rng: np.random.Generator) -> tuple[AmpGeom, ...]:
    hx, hy = nx // 2, ny // 2
    if det % 2 == 1:
        layout = [("A", 0, ny, 0, hx, False, False), ("B", 0, ny, hx, nx, True, False)]
        prescan, overscan = 0, 32
    else:
        layout = [("A", 0, hy, 0, hx, False, False), ("B", 0, hy, hx, nx, True, False),
                  ("C", hy, ny, 0, hx, False, True), ("D", hy, ny, hx, nx, True, True)]
        prescan, overscan = 4, 40
    amps = []
    for name, y0, y1, x0, x1, fx, fy in layout:
        gain = float(np.round(rng.uniform(1.2, 2.5), 3))
        rdnoise = float(np.round(rng.uniform(4.0, 9.0), 2))
        bias = float(np.round(rng.uniform(500.0, 2000.0), 1))
        full_well = rng.uniform(90_000.0, 140_000.0)
        saturate = float(min(65000.0, np.floor(bias + full_well / gain)))
        amps.append(AmpGeom(name, y0, y1, x0, x1, fx, fy, prescan, overscan,
                            gain, rdnoise, bias, saturate))
    return tuple(amps)
