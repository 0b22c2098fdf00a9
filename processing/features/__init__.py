"""The versioned feature store (DuckDB). `python -m processing.features --help` for its CLI."""

from processing.features.store import (
    Features,
    FeatureStore,
    Member,
    UnknownVersionError,
    WorkspaceLockedError,
    version_id_for,
)

__all__ = [
    "FeatureStore",
    "Features",
    "Member",
    "UnknownVersionError",
    "WorkspaceLockedError",
    "version_id_for",
]
