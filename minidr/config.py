"""Pipeline configuration: one frozen dataclass per stage, with defaults and a doc per field.

The whole :class:`Config` is written to ``REPO/minidr.toml`` by ``minidr init`` (every
setting with its default and a comment), read back by every command, and saved with its
hash in each release's manifest. Stages receive only their own section.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from .errors import ConfigError


def _f(default, doc: str):
    """A dataclass field with a default and its documentation (shown in minidr.toml)."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"doc": doc})
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class CalibsConfig:
    clip_sigma: float = _f(3.0, "sigma-clipping threshold when stacking calibration frames")
    clip_iterations: int = _f(3, "sigma-clipping iterations when stacking")
    bad_flat_low: float = _f(0.5, "flat response below this (normalised) marks a pixel BAD")
    bad_flat_high: float = _f(1.5, "flat response above this (normalised) marks a pixel BAD")
    hot_dark_sigma: float = _f(8.0, "dark current this many sigma above the median marks a pixel HOT")

    def validate(self):
        if self.clip_sigma <= 0:
            raise ConfigError("calibs.clip_sigma must be > 0")


@dataclass(frozen=True)
class IsrConfig:
    overscan_smooth_rows: int = _f(31, "running-median window (rows) smoothing the per-row overscan level")
    saturation_grow: int = _f(1, "pixels by which saturated areas are grown in the mask")
    cr_sigma: float = _f(5.0, "cosmic-ray detection: significance above the local sky (sigma) of a seed pixel")
    cr_contrast: float = _f(2.0, "cosmic-ray detection: minimum sharpness contrast against the PSF (a seed exceeds the mean of two opposite neighbours by this factor, its square along diagonals; 2 keeps stars of FWHM >= 2 px safe)")
    cosmic_rays: bool = _f(True, "find, mask (CR, grown by 1 px) and interpolate cosmic rays in science frames")
    cr_grow_sigma: float = _f(3.0, "cosmic-ray detection: significance (sigma) of pixels next to a hit that extend it")
    cr_noise: float = _f(2.0, "cosmic-ray detection: noise allowance (sigma) on each side of the sharpness test")
    cr_iterations: int = _f(4, "cosmic-ray detection: passes that extend hits into their neighbours")
    interpolate_defects: bool = _f(True, "interpolate BAD, HOT and NO_DATA pixels along rows (sets INTERP)")

    def validate(self):
        if self.overscan_smooth_rows < 1:
            raise ConfigError("isr.overscan_smooth_rows must be >= 1")
        if self.saturation_grow < 0:
            raise ConfigError("isr.saturation_grow must be >= 0")
        if self.cr_contrast < 1:
            raise ConfigError("isr.cr_contrast must be >= 1")
        if self.cr_sigma <= 0 or self.cr_grow_sigma <= 0:
            raise ConfigError("isr.cr_sigma and isr.cr_grow_sigma must be > 0")


@dataclass(frozen=True)
class BackgroundConfig:
    mesh_size: int = _f(64, "background mesh cell size in pixels")
    filter_size: int = _f(3, "median filter size (cells) applied to the background mesh")
    clip_sigma: float = _f(3.0, "sigma clipping of pixel values within a mesh cell")
    passes: int = _f(2, "background passes; from the 2nd on, sources found in the 1st are masked")
    mask_threshold: float = _f(3.0, "2nd pass: mask pixels above this many sigma in the smoothed residual")
    mask_smooth: float = _f(1.5, "2nd pass: Gaussian sigma [pixels] smoothing the residual before masking")
    mask_grow: int = _f(4, "2nd pass: masked sources are grown by this many pixels")

    def validate(self):
        if self.mesh_size < 8:
            raise ConfigError("background.mesh_size must be >= 8")


@dataclass(frozen=True)
class DetectionConfig:
    threshold: float = _f(5.0, "detection threshold in sigma of the PSF-smoothed noise")
    min_pixels: int = _f(3, "minimum number of connected pixels above threshold in a footprint")
    grow: float = _f(1.0, "footprints are grown by this many PSF FWHM")
    deblend_nthresh: int = _f(32, "number of deblending sub-thresholds")
    deblend_contrast: float = _f(0.005, "minimum flux fraction of a deblended child")
    deblend_nsigma: float = _f(3.0, "minimum peak prominence of a deblended child, in sigma of the smoothed noise")
    cr_sharpness: float = _f(1.5, "detections whose centre pixel exceeds the fitted PSF's by this factor (and by 5 sigma) are cosmic rays")
    edge_margin: int = _f(0, "peaks closer than this [pixels] to the image edge are dropped")
    residual_pass: bool = _f(True, "detect again on the image minus the point sources' PSF models (stars on the shoulders of brighter ones)")

    def validate(self):
        if self.threshold <= 0:
            raise ConfigError("detection.threshold must be > 0")


@dataclass(frozen=True)
class MeasurementConfig:
    aperture_radius: float = _f(2.0, "apFlux aperture radius, in units of the PSF FWHM")
    extendedness_ratio: float = _f(0.985, "psfFlux / extended-model flux below this means extended")
    extendedness_nsigma: float = _f(3.0, "extended only when 1 - ratio also exceeds this many sigma of its noise")
    extendedness_size: float = _f(0.25, "extended sources must also exceed the PSF stars' ixx + iyy by this fraction")
    neighbour_iterations: int = _f(2, "PSF fluxes and apertures re-measured this many times with the neighbours' PSF models subtracted")
    empirical_apcorr: bool = _f(False, "scale PSF fluxes to 4-FWHM aperture fluxes of the PSF stars (off: trust the model's normalisation)")
    plugins: tuple = _f((), "extra Source measurements: 'module:function' or 'file.py:function' (relative to the repository), see docs/plugins.md")

    def validate(self):
        if self.aperture_radius <= 0:
            raise ConfigError("measurement.aperture_radius must be > 0")
        for spec in self.plugins:
            if not isinstance(spec, str) or ":" not in spec:
                raise ConfigError(f"measurement.plugins: {spec!r} is not 'module:function' or 'file.py:function'")


@dataclass(frozen=True)
class PsfConfig:
    min_snr: float = _f(50.0, "minimum S/N of stars used to model the PSF")
    max_stars: int = _f(200, "at most this many PSF stars per detector")
    spatial_order: int = _f(1, "polynomial order of the PSF parameters across the detector")
    stamp_radius: int = _f(12, "half-size (pixels) of the stamps used to fit PSF stars")
    initial_fwhm: float = _f(4.0, "first-guess PSF FWHM [pixels] used for the first detection pass")

    def validate(self):
        if self.spatial_order < 0:
            raise ConfigError("psf.spatial_order must be >= 0")


@dataclass(frozen=True)
class AstrometryConfig:
    max_offset: float = _f(60.0, "largest header-WCS pointing error searched, arcsec")
    max_rotation: float = _f(1.0, "largest header-WCS rotation error searched, degrees")
    match_radius: float = _f(1.0, "final source/reference match radius, arcsec")
    sip_degree: int = _f(2, "degree of the SIP distortion polynomial (0 for pure TAN)")
    min_matches: int = _f(6, "fewest reference matches for an accepted fit")
    max_rms: float = _f(0.2, "largest accepted fit RMS, arcsec")
    vote_sources: int = _f(50, "brightest sources used in the offset/rotation vote (against 3x as many reference stars)")
    vote_bin: float = _f(2.0, "cell size of the offset vote histogram, arcsec")
    max_scale_error: float = _f(0.005, "largest relative header-WCS pixel-scale error searched (0.005 is 0.5%)")
    min_votes: int = _f(5, "fewest coincident pairs for the offset/rotation vote to be trusted")
    clip_sigma: float = _f(3.0, "matches whose fit residual exceeds this many sigma are rejected")
    clip_iterations: int = _f(3, "fit / clip iterations at the final match radius")
    position_floor: float = _f(0.01, "error added in quadrature to centroid errors when weighting the fit (reference catalog noise), arcsec")
    mag_tolerance: float = _f(1.0, "matches whose ref_mag + 2.5 log10(flux) is further than this from the median are rejected, mag (0: off)")

    def validate(self):
        if self.min_matches < 3:
            raise ConfigError("astrometry.min_matches must be >= 3")
        if self.vote_sources < 3:
            raise ConfigError("astrometry.vote_sources must be >= 3")
        if self.vote_bin <= 0 or self.match_radius <= 0:
            raise ConfigError("astrometry.vote_bin and astrometry.match_radius must be > 0")
        if not 0 <= self.sip_degree <= 5:
            raise ConfigError("astrometry.sip_degree must be between 0 and 5")


@dataclass(frozen=True)
class PhotometryConfig:
    min_snr: float = _f(20.0, "minimum S/N of stars used for the zero point")
    clip_sigma: float = _f(3.0, "sigma clipping of zero-point estimates")
    min_stars: int = _f(3, "fewest reference stars for an accepted zero point")
    error_floor: float = _f(0.01, "per-star zero-point error added in quadrature to the photon noise (reference catalog errors), mag")

    def validate(self):
        if self.min_stars < 1:
            raise ConfigError("photometry.min_stars must be >= 1")


@dataclass(frozen=True)
class RefcatConfig:
    ra: str = _f("ra", "reference catalog column holding RA [deg]")
    dec: str = _f("dec", "reference catalog column holding Dec [deg]")
    mag: str = _f("{band}_mag", "reference catalog column pattern of AB magnitudes")

    def validate(self):
        if "{band}" not in self.mag:
            raise ConfigError("refcat.mag must contain '{band}'")


@dataclass(frozen=True)
class AssociationConfig:
    radius: float = _f(1.0, "association radius, arcsec")

    def validate(self):
        if self.radius <= 0:
            raise ConfigError("association.radius must be > 0")


@dataclass(frozen=True)
class ReleaseConfig:
    partition_rows: int = _f(500_000, "most rows per HEALPix sky chunk (partition) of a release table")
    row_group_rows: int = _f(20_000, "rows per Parquet row group (smaller prunes better)")
    compression: str = _f("zstd", "Parquet compression codec")

    def validate(self):
        if self.partition_rows < 1:
            raise ConfigError("release.partition_rows must be >= 1")


@dataclass(frozen=True)
class QueryConfig:
    timeout: float = _f(60.0, "time limit of one query, seconds")
    max_rows: int = _f(1_000_000, "row cap of one query result (the result says when it was truncated)")

    def validate(self):
        if self.timeout <= 0:
            raise ConfigError("query.timeout must be > 0")


@dataclass(frozen=True)
class Config:
    """Every setting of the pipeline, by stage."""

    calibs: CalibsConfig = field(default_factory=CalibsConfig)
    isr: IsrConfig = field(default_factory=IsrConfig)
    background: BackgroundConfig = field(default_factory=BackgroundConfig)
    detection: DetectionConfig = field(default_factory=DetectionConfig)
    measurement: MeasurementConfig = field(default_factory=MeasurementConfig)
    psf: PsfConfig = field(default_factory=PsfConfig)
    astrometry: AstrometryConfig = field(default_factory=AstrometryConfig)
    photometry: PhotometryConfig = field(default_factory=PhotometryConfig)
    refcat: RefcatConfig = field(default_factory=RefcatConfig)
    association: AssociationConfig = field(default_factory=AssociationConfig)
    release: ReleaseConfig = field(default_factory=ReleaseConfig)
    query: QueryConfig = field(default_factory=QueryConfig)

    def validate(self) -> "Config":
        for f in fields(self):
            getattr(self, f.name).validate()
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def hash(self) -> str:
        """sha256 of the canonical JSON form (saved in every release manifest)."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    def replace(self, **sections) -> "Config":
        """A copy with some settings changed: ``cfg.replace(detection={"threshold": 3})``."""
        return from_dict({**self.to_dict(), **{k: {**self.to_dict()[k], **v} for k, v in sections.items()}})

    def to_toml(self) -> str:
        """The whole config as commented TOML (what ``minidr init`` writes)."""
        lines = ["# minidr pipeline configuration: every setting with its default.", ""]
        for sec in fields(self):
            obj = getattr(self, sec.name)
            lines.append(f"[{sec.name}]")
            for f in fields(obj):
                lines.append(f"# {f.metadata.get('doc', '')}")
                lines.append(f"{f.name} = {_toml_value(getattr(obj, f.name))}")
            lines.append("")
        return "\n".join(lines)


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (tuple, list)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _typed(default, value, where: str):
    """``value`` converted to the type of the setting's default (a list for tuple settings)."""
    if isinstance(default, tuple):
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, e.g. [\"plugins/my.py:function\"]")
        return tuple(value)
    return type(default)(value)


def from_dict(data: dict) -> Config:
    """Build a Config from nested dicts, naming any unknown section or setting."""
    kwargs = {}
    sections = {f.name: f for f in fields(Config)}
    for name, values in data.items():
        if name not in sections:
            raise ConfigError(f"unknown config section [{name}]; known: {', '.join(sections)}")
        cls = sections[name].default_factory
        known = {f.name: f for f in fields(cls)}
        for key in values:
            if key not in known:
                raise ConfigError(f"unknown setting {name}.{key}; known: {', '.join(known)}")
        try:
            kwargs[name] = cls(**{k: _typed(known[k].default, v, f"{name}.{k}") for k, v in values.items()})
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"bad value in [{name}]: {exc}") from None
    return Config(**kwargs).validate()


def load(path: str | Path) -> Config:
    """Read a TOML config file (missing settings take their defaults)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return from_dict(data)
