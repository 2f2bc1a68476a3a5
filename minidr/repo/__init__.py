"""The data repository: layout, registry, ingest and stored intermediate products."""
