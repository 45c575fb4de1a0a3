"""``eemo demo``: the embedded sample through every asset of the graph, recorded in the Dagster instance."""

from __future__ import annotations

import os
from pathlib import Path

from eemo_pipeline.instance import ensure_dagster_home, get_instance
from eemo_pipeline.sample import write_sample
from eemo_pipeline.sources import SOURCES, root_env_var
from eemo_pipeline.storage import storage_root

DEMO_JOB = "ingest_sources"
# The run's events still go to the instance (and the UI); the terminal only gets warnings and errors.
_QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def run_demo(sample_dir: Path, dagster_home: str | None = None) -> bool:
    """Write the sample, run the demo job for every partition and print a summary; True when all succeeded."""
    from eemo_pipeline.definitions import defs

    home = ensure_dagster_home(dagster_home)
    storage = storage_root()
    os.environ["EEMO_STORAGE"] = str(storage)
    roots = write_sample(sample_dir)
    for source, root in roots.items():
        os.environ[root_env_var(source)] = str(root)
    print(f"sample written to {Path(sample_dir).resolve()}")

    instance = get_instance()
    job = defs.resolve_job_def(DEMO_JOB)
    failures = []
    print(f"\n{'partition':<11} {'status':<7} {'rows kept':>9} {'quarantined':>11} {'images ok':>9}  checks")
    for source in SOURCES:
        result = job.execute_in_process(
            run_config=_QUIET, instance=instance, partition_key=source, raise_on_error=False
        )
        metadata: dict[str, object] = {}
        for event in result.get_asset_materialization_events():
            metadata.update({k: v.value for k, v in event.materialization.metadata.items()})
        checks = result.get_asset_check_evaluations()
        not_passed = [f"{c.asset_key.to_user_string()}.{c.check_name}" for c in checks if not c.passed]
        status = "ok" if result.success else "FAILED"
        if not result.success:
            failures.append(source)
        print(
            f"{source:<11} {status:<7} {metadata.get('rows_kept', '-'):>9} {metadata.get('rows_quarantined', '-'):>11} "
            f"{metadata.get('images_decodable', '-'):>9}  {len(checks) - len(not_passed)}/{len(checks)} passed"
            + (f" (warned: {', '.join(not_passed)})" if not_passed else "")
        )
    print(f"\noutputs:     {storage}/<asset>/<partition>.parquet")
    print(f"quarantine:  {storage}/quarantine/<asset>/<partition>.parquet")
    query = f"select source, measure, count(*) n from '{storage}/raw_annotations/*.parquet' group by all order by all"
    print(f"query:       .venv/bin/python -c \"import duckdb; duckdb.sql(\\\"{query}\\\").show()\"")
    print(f"dagster UI:  DAGSTER_HOME={home} .venv/bin/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000")
    print("             then open http://127.0.0.1:3000 (the demo's runs are listed under Runs)")
    if failures:
        print(f"\nfailed partitions: {', '.join(failures)} (see the run logs in the UI)")
    return not failures
