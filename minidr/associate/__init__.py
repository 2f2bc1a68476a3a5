"""Association of Sources into Objects (+ per-band Object statistics) and forced photometry.

``associate(sources, bands, cfg) -> AssociationResult`` groups all calibrated Sources of a
repository into Objects; :mod:`minidr.associate.forced` measures PSF fluxes of every Object
on each frame. See docs/association.md.
"""

from __future__ import annotations

from .associate import AssociationResult, associate, link, object_schema

__all__ = ["AssociationResult", "associate", "link", "object_schema"]
