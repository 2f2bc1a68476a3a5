"""Shared by the solutions: where the repository and the simulated survey are."""

import os
from pathlib import Path

REPO = Path(os.environ.get("MINIDR_REPO", "minidr-demo/repo"))
SURVEY = Path(os.environ.get("MINIDR_SURVEY", "data_samples"))
OUT = Path(os.environ.get("MINIDR_OUT", "."))
