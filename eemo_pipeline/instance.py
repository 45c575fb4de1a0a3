"""The project-local Dagster instance: a home folder (``Settings.dagster_home``) with this repository's
``dagster.yaml``, opened by path (no ``DAGSTER_HOME`` needs to be set in this process)."""

from __future__ import annotations

import shutil
from pathlib import Path

# Per-pool slot limits applied to a new instance (dagster.yaml only carries the default limit).
POOL_LIMITS = {"llm": 8, "gpu": 1}
_REPO_CONFIG = Path(__file__).resolve().parents[1] / "dagster.yaml"


def ensure_dagster_home(home: str | Path) -> Path:
    """Create ``home`` with the repository's dagster.yaml unless it has one; returns its absolute path."""
    path = Path(home).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    config = path / "dagster.yaml"
    if not config.exists() and _REPO_CONFIG.is_file():
        shutil.copyfile(_REPO_CONFIG, config)
    return path


def get_instance(home: str | Path):
    """The persistent instance in ``home`` (created when missing), with the pipeline's pool limits set once.
    Close it when done (it is a context manager)."""
    from dagster import DagsterInstance

    instance = DagsterInstance.from_config(str(ensure_dagster_home(home)))
    known = instance.event_log_storage.get_concurrency_keys()
    for pool, limit in POOL_LIMITS.items():
        if pool not in known:
            instance.event_log_storage.set_concurrency_slots(pool, limit)
    return instance
