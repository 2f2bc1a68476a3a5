"""Instrument signature removal: overscan, assembly, bias/dark/flat, variance, masks, cosmic rays."""

from .isr import AssembledImage, assemble, find_cosmic_rays, run

__all__ = ["AssembledImage", "assemble", "find_cosmic_rays", "run"]
