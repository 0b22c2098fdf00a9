"""The versioned feature store (DuckDB). `python -m processing.features --help` for its CLI."""

from processing.features.store import FeatureStore, StoreConfig, WorkspaceDamagedError, WorkspaceLockedError
from processing.features.versions import Features, Member, UnknownVersionError, version_id_for

__all__ = [
    "FeatureStore",
    "Features",
    "Member",
    "StoreConfig",
    "UnknownVersionError",
    "WorkspaceDamagedError",
    "WorkspaceLockedError",
    "version_id_for",
]
