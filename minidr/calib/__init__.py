"""Master calibrations: sigma-clipped stacks of bias, dark and flat frames."""

from .combine import master_bias, master_dark, master_flat

__all__ = ["master_bias", "master_dark", "master_flat"]
