"""The published release: schemas, HATS partitioning and writing, manifest and verification.

See docs/release-format.md for the on-disk format.
"""
