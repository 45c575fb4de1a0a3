"""benchmark_eemo_bench, benchmark_cross_domain and benchmark_report: every configured model on the benchmarks.

Models come from run config as ``[NAME=]SPEC`` entries (a checkpoint directory, ``http(s)://HOST/v1[#MODEL]``
or ``endpoint:<role>``); by default the base model (``$EEMO_BASE_MODEL``) and the two training checkpoints,
named ``base``, ``sft`` and ``grpo``. Local models run in this process (pool ``gpu``), one at a time; every
answer goes through the response cache (``<EEMO_STORAGE>/llm_cache.sqlite``, or the instance's database when the
instance is on PostgreSQL), so a rerun repeats no generation. Benchmark roots come from the run config, else the
input paths (``EEMO_<BENCHMARK>_ROOT``).
"""

from pathlib import Path

import polars as pl
from dagster import AssetExecutionContext, AssetIn, AssetKey, Config, MetadataValue, Output, asset
from pydantic import Field

from eemo_pipeline.checks import frame_metadata, markdown_table
from eemo_pipeline.resources import InputPathsResource, LLMEndpointResource, StorageResource
from eemo_pipeline.settings import AESBENCH_KEY_ENV, BASE_MODEL_ENV, root_variable

GROUP = "evaluation"
REPORT_DIR = "benchmark_report"  # <EEMO_STORAGE>/benchmark_report/: report.md, report.html, figures
CROSS_DOMAIN = ("artphoto", "artemis", "uniaa", "aesbench")
CHECKPOINTS = {"sft_checkpoint": AssetIn(key=AssetKey("sft_checkpoint")),
               "grpo_checkpoint": AssetIn(key=AssetKey("grpo_checkpoint"))}


class EvaluationConfig(Config):
    models: list[str] = Field(
        default_factory=list,
        description="[NAME=]SPEC per model: a checkpoint directory (full or PEFT adapter), http(s)://HOST/v1[#MODEL] "
        "(key from EEMO_EVAL_API_KEY) or endpoint:ROLE. Empty: the base model ($EEMO_BASE_MODEL) and the sft and "
        "grpo checkpoints.",
    )
    batch_size: int = Field(default=8, description="Requests per batch (local models generate a batch at once).")
    limit: int = Field(default=0, description="At most this many items per benchmark and task, in file order; 0 = all.")
    max_new_tokens: int = Field(default=0, description="Cap on every reply's length, for quick runs; 0 = each "
                                "task's own limit (512 tokens, 1024 for descriptions).")
    vad_modes: list[str] = Field(default=["direct", "probability"],
                                 description="VAD modes: direct (the model writes a number) and probability "
                                 "(level keywords' next-token probabilities; local models only).")


class EEmoBenchConfig(EvaluationConfig):
    root: str = Field(default="", description=f"EEmo-Bench root folder; empty means {root_variable('eemo_bench')}.")


class CrossDomainConfig(EvaluationConfig):
    artphoto_root: str = Field(default="", description=f"Artphoto root; empty means {root_variable('artphoto')}.")
    artemis_root: str = Field(default="", description=f"ArtEmis root; empty means {root_variable('artemis')}.")
    uniaa_root: str = Field(default="", description=f"UNIAA root; empty means {root_variable('uniaa')}.")
    aesbench_root: str = Field(default="", description=f"AesBench root; empty means {root_variable('aesbench')}.")
    aesbench_answer_key: str = Field(default="", description=f"AesE answer key file; empty means ${AESBENCH_KEY_ENV} "
                                     "(the public file has none: without it AesE accuracy is not reported).")
    # The test file under each root; empty: the authors' released file when present (readers.py).
    artphoto_file: str = Field(default="", description="Artphoto item list; empty: test_Artphoto.json when "
                               "present, else every <emotion>_<NNNN>.jpg in the root.")
    artemis_file: str = Field(default="", description="ArtEmis file (.json or .csv); empty: test_ArtEmis.json when "
                              "present, else artemis_dataset_release_v0.csv.")
    uniaa_file: str = Field(default="", description="UNIAA file; empty: test_UNIAA_Sent.json.")
    aesbench_file: str = Field(default="", description="AesBench file; empty: test_AesBench_AesE.json when present, "
                               "else AesBench_evaluation.json.")


def _limited(items: pl.DataFrame, limit: int) -> pl.DataFrame:
    return items.group_by("benchmark", "task", maintain_order=True).head(limit) if limit > 0 else items


def _evaluate(context: AssetExecutionContext, config: EvaluationConfig, storage: StorageResource,
              input_paths: InputPathsResource, items: pl.DataFrame, checkpoints: list[pl.DataFrame],
              notes: list[str]) -> Output[pl.DataFrame]:
    from eemo_pipeline.evaluation.models import default_model_entries, parse_model_entry, run_models

    settings = input_paths.settings()
    entries = ([parse_model_entry(entry) for entry in config.models] if config.models
               else default_model_entries([row for frame in checkpoints for row in frame.iter_rows(named=True)],
                                          base_model=settings.base_model, storage=storage.path))
    if not entries:
        raise ValueError(f"no models to evaluate: set the run config's models or {BASE_MODEL_ENV}")
    items = _limited(items, config.limit)
    context.log.info(f"{items.height} items, models: {', '.join(f'{n}={s}' for n, s in entries)}")
    cache = storage.response_cache()
    try:
        runs = run_models(items, entries, cache, settings=settings, batch_size=config.batch_size,
                          vad_modes=config.vad_modes,
                          max_new_tokens=config.max_new_tokens or None, log_progress=context.log.info)
    finally:
        cache.close()
    predictions = pl.concat([run.predictions for run in runs])
    notes = notes + [note for run in runs for note in dict.fromkeys(run.notes)]
    counts = predictions.group_by("model", "benchmark", "task").agg(
        pl.len().alias("rows"), pl.col("parse_failed").sum().alias("unparsed")).sort("model", "benchmark", "task")
    return Output(predictions, metadata={
        **frame_metadata(predictions),
        "models": MetadataValue.json({run.name: {"spec": run.spec, **run.stats} for run in runs}),
        "rows_per_task": MetadataValue.md(markdown_table(counts)),
        "notes": MetadataValue.md("\n".join(f"- {note}" for note in notes) or "none"),
    })


@asset(group_name=GROUP, kinds={"pytorch", "parquet"}, pool="gpu", code_version="1", ins=CHECKPOINTS)
def benchmark_eemo_bench(context: AssetExecutionContext, config: EEmoBenchConfig, storage: StorageResource,
                         input_paths: InputPathsResource, sft_checkpoint: pl.DataFrame,
                         grpo_checkpoint: pl.DataFrame) -> Output[pl.DataFrame]:
    """Every configured model on EEmo-Bench: perception, ranking, description and VAD (direct and probability
    mode); one prediction row per item and model (three per VAD item and mode)."""
    from eemo_pipeline.evaluation.readers import benchmark_root, read_eemo_bench

    items = read_eemo_bench(benchmark_root("eemo_bench", config.root or input_paths.settings().root("eemo_bench")))
    return _evaluate(context, config, storage, input_paths, items, [sft_checkpoint, grpo_checkpoint], [])


@asset(group_name=GROUP, kinds={"pytorch", "parquet"}, pool="gpu", code_version="1", ins=CHECKPOINTS)
def benchmark_cross_domain(context: AssetExecutionContext, config: CrossDomainConfig, storage: StorageResource,
                           input_paths: InputPathsResource, sft_checkpoint: pl.DataFrame,
                           grpo_checkpoint: pl.DataFrame) -> Output[pl.DataFrame]:
    """Every configured model on the cross-domain sets: Artphoto and ArtEmis dominant emotion, UNIAA sentiment and
    AesBench AesE multiple choice. A set whose root is not configured is skipped and named in ``notes``."""
    from eemo_pipeline.evaluation.readers import READERS, benchmark_root

    settings = input_paths.settings()
    frames, notes = [], []
    for benchmark in CROSS_DOMAIN:
        configured = getattr(config, f"{benchmark}_root") or settings.root(benchmark)
        if not configured:
            notes.append(f"{benchmark} skipped: set {root_variable(benchmark)} or the run config's {benchmark}_root")
            continue
        root, file = benchmark_root(benchmark, configured), getattr(config, f"{benchmark}_file") or None
        if benchmark == "aesbench":
            key = config.aesbench_answer_key or settings.aesbench_answer_key
            frames.append(READERS[benchmark](root, Path(key) if key else None, file=file))
        else:
            frames.append(READERS[benchmark](root, file=file))
    if not frames:
        raise ValueError("no cross-domain benchmark is configured: " + "; ".join(notes))
    return _evaluate(context, config, storage, input_paths, pl.concat(frames), [sft_checkpoint, grpo_checkpoint],
                     notes)


class ReportConfig(Config):
    judge_rounds: int = Field(default=5, description="Judge calls per description and metric (the paper: 5).")


def _probability_notes(predictions: pl.DataFrame) -> list[str]:
    """A note per model with direct-mode VAD rows but no probability-mode ones (no token probabilities)."""
    vad = predictions.filter(pl.col("task") == "vad")
    modes = vad.group_by("model", maintain_order=True).agg(pl.col("mode").unique())
    return [f"{model}: no token probabilities (an endpoint), so no probability-mode VAD row"
            for model, found in modes.iter_rows() if "direct" in found and "probability" not in found]


@asset(group_name=GROUP, kinds={"markdown", "html"}, pool="llm", code_version="1")
def benchmark_report(context: AssetExecutionContext, config: ReportConfig, storage: StorageResource,
                     judge: LLMEndpointResource, benchmark_eemo_bench: pl.DataFrame,
                     benchmark_cross_domain: pl.DataFrame) -> Output[pl.DataFrame]:
    """The paper's Tables 1-3 for every evaluated model beside the published numbers, as Markdown and HTML with
    VAD histograms and a radar chart under ``<EEMO_STORAGE>/benchmark_report/``; descriptions scored by the
    judge endpoint (``EEMO_JUDGE_*``). The value is the long metrics table."""
    from eemo_pipeline.evaluation.judge import judge_descriptions
    from eemo_pipeline.evaluation.report import write_report
    from eemo_pipeline.evaluation.runner import score_all
    from eemo_pipeline.settings import EndpointNotConfigured
    from eemo_pipeline.sources.base import rejects

    predictions = pl.concat([benchmark_eemo_bench, benchmark_cross_domain])
    notes = _probability_notes(predictions)
    judged, judge_stats, judge_rejects = None, {}, []
    try:
        endpoint = judge.endpoint()
    except EndpointNotConfigured as error:
        notes.append(f"descriptions not judged: {error}")
    else:
        cache = storage.response_cache()
        try:
            result = judge_descriptions(predictions, endpoint, cache, rounds=config.judge_rounds)
        finally:
            cache.close()
        judged, judge_stats = result.judged, {**result.stats, "judge_model": endpoint.model}
        judge_rejects = result.quarantine
    # Staged on every build (empty when nothing was rejected), so the quarantine always belongs to this report.
    path = storage.stage_quarantine("benchmark_report", None, rejects(judge_rejects))
    if judge_rejects:
        notes.append(f"{len(judge_rejects)} judge rounds gave no valid score and were left out ({path})")
    table = score_all(predictions, judged)
    files = write_report(table, predictions, storage.path / REPORT_DIR, notes=notes, judged=judged)
    return Output(table, metadata={
        **frame_metadata(table),
        "report": MetadataValue.md(files.markdown_text),
        "report_html": MetadataValue.path(str(files.html)),
        "report_markdown": MetadataValue.path(str(files.markdown)),
        **{f"figure/{figure.stem}": MetadataValue.path(str(figure)) for figure in files.figures},
        "notes": MetadataValue.md("\n".join(f"- {note}" for note in files.notes) or "none"),
        "judge": MetadataValue.json(judge_stats or {"judged": False}),
    })
