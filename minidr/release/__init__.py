"""The published release: schemas, HATS partitioning and writing, manifest and verification.

See docs/release-format.md for the on-disk format.
"""

from .manifest import catalog_partitions, list_releases, load_manifest, read_properties, verify_release
from .partition import Partition, plan_partitions
from .schema import conform, object_schema, schema_for
from .writer import CatalogInfo, write_hats_catalog, write_release

__all__ = [
    "CatalogInfo",
    "Partition",
    "catalog_partitions",
    "conform",
    "list_releases",
    "load_manifest",
    "object_schema",
    "plan_partitions",
    "read_properties",
    "schema_for",
    "verify_release",
    "write_hats_catalog",
    "write_release",
]
