"""The project-local Dagster instance: ``DAGSTER_HOME`` with this repository's ``dagster.yaml``."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

DEFAULT_HOME = Path(".eemo") / "dagster_home"
# Per-pool slot limits applied to a new instance (dagster.yaml only carries the default limit).
POOL_LIMITS = {"llm": 8, "gpu": 1}
_REPO_CONFIG = Path(__file__).resolve().parents[1] / "dagster.yaml"


def ensure_dagster_home(home: str | Path | None = None) -> Path:
    """Use ``home``, else ``DAGSTER_HOME``, else ``./.eemo/dagster_home``; create it with dagster.yaml."""
    path = Path(home or os.environ.get("DAGSTER_HOME") or DEFAULT_HOME).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    config = path / "dagster.yaml"
    if not config.exists() and _REPO_CONFIG.is_file():
        shutil.copyfile(_REPO_CONFIG, config)
    os.environ["DAGSTER_HOME"] = str(path)
    return path


def get_instance():
    """The persistent instance under DAGSTER_HOME, with the pipeline's pool limits set once."""
    from dagster import DagsterInstance

    ensure_dagster_home()
    instance = DagsterInstance.get()
    known = instance.event_log_storage.get_concurrency_keys()
    for pool, limit in POOL_LIMITS.items():
        if pool not in known:
            instance.event_log_storage.set_concurrency_slots(pool, limit)
    return instance
