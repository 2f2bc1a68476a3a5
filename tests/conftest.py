"""Shared fixtures. Session-scoped data (a simulated survey, a repo, a release) are built
once per test session from the committed ``data_samples/`` or a tiny simulation."""

from __future__ import annotations
