"""sft_checkpoint and grpo_checkpoint: TRL + PEFT training, launched out of process through Dagster Pipes.

Each asset writes a job file and runs ``accelerate launch -m eemo_pipeline.training.launch`` (one process per
device) in the pool ``gpu``, through the ``training_launcher`` resource (a local subprocess, or on Kubernetes a pod
of its own). The run directory is named by a fingerprint of the inputs, settings and launch layout (device, world
size, accelerate config): a finished run is reused, an interrupted one resumes from its last checkpoint (a failed
launch is retried at once).
The asset's value is a one-row frame that points at the adapter (or, after a full fine-tune, the whole model).
"""

import dataclasses
import typing
from pathlib import Path
from typing import Any

import polars as pl
import pydantic
from dagster import (
    AssetExecutionContext,
    Config,
    MetadataValue,
    Output,
    RetryRequested,
    asset,
)
from pydantic import Field

from eemo_pipeline.checks import frame_metadata
from eemo_pipeline.resources import InputPathsResource, StorageResource, TrainerFailed, TrainingLauncherResource
from eemo_pipeline.settings import BASE_MODEL_ENV, Settings
from eemo_pipeline.storage import asset_path, from_storage, storage_relative
from eemo_pipeline.tasks.registry import TASKS
from eemo_pipeline.training.grpo import GRPOSettings, reward_curves
from eemo_pipeline.training.sft import SFTSettings

GROUP = "training"
# A crashed trainer is relaunched (after 5 s, then 10 s) and resumes from its last checkpoint. Only the launch is
# retried: a configuration error fails at once.
TRAINER_RELAUNCHES = 2
CHECKPOINT_SCHEMA = {
    "stage": pl.String, "checkpoint_path": pl.String, "base_model_path": pl.String, "global_step": pl.Int64,
    "run_dir": pl.String, "dataset_path": pl.String, "dataset_hash": pl.String, "merged_path": pl.String,
    "resumed_from": pl.String,
}


def curve_columns() -> tuple[str, ...]:
    """The metrics plotted in the asset's metadata, when the stage logs them: losses, the learning rate, and
    every reward of every registered task (``grpo.reward_curves``)."""
    return ("loss", "learning_rate", "grad_norm", "mean_token_accuracy", "reward", *reward_curves(tuple(TASKS)),
            "kl")


class LaunchConfig(Config):
    base_model_path: str = Field(default="", description=f"Local model directory; empty means the input paths' base "
                                                          f"model (${BASE_MODEL_ENV}). Nothing is downloaded.")
    device: str = Field(default="auto", description="auto (a GPU when present), cpu or cuda.")
    num_processes: int = Field(default=1, description="Processes (GPUs, or CPU processes in a gloo group) accelerate "
                                                      "starts on this machine; ignored with a config file.")
    accelerate_config: str = Field(default="", description="An accelerate config file (deploy/accelerate/*.yaml); a "
                                                           "relative path is taken from the working directory.")
    merge: bool = Field(default=False, description="Also save the adapter merged into the base weights (merged/).")


def settings_config(name: str, settings_type: type, doc: str) -> type[LaunchConfig]:
    """A Dagster config class with one field per training setting (same defaults and help), so the settings
    dataclass stays the single source of the recipe."""
    hints = typing.get_type_hints(settings_type)
    fields = {}
    for f in dataclasses.fields(settings_type):
        hint, default = hints[f.name], f.default
        if typing.get_origin(hint) is tuple:  # Dagster config has lists (the settings keep tuples: immutable)
            hint, default = list[typing.get_args(hint)[0]], list(default)
        fields[f.name] = (hint, Field(default=default, description=f.metadata.get("help")))
    return pydantic.create_model(name, __base__=LaunchConfig, __doc__=doc, __module__=__name__, **fields)


SFTTrainingConfig = settings_config("SFTTrainingConfig", SFTSettings, "Stage 1; the defaults are the paper's recipe.")


class GRPOTrainingConfig(settings_config("GRPOSettingsConfig", GRPOSettings, "Stage 2 settings.")):
    """Stage 2; group size 8, KL penalty beta and the learning rate as in the paper's setup."""

    embedding_model_path: str = Field(default="", description="Sentence-embedding model for S_sem; empty means the "
                                                              "packaged all-MiniLM-L6-v2.")


def _settings(config: LaunchConfig, settings_type: type) -> dict[str, Any]:
    """The config's settings, checked and normalised by the settings class (a bad value fails before launching;
    the same settings give the same run fingerprint)."""
    values = {f.name: getattr(config, f.name) for f in dataclasses.fields(settings_type)}
    return dataclasses.asdict(settings_type(**values))


def base_model_path(config: LaunchConfig, default: str | Path | None = None) -> Path:
    """The configured base model directory, else ``default`` (the settings' base model); a clear error when none
    is set or it is not a model."""
    value = config.base_model_path or default
    if not value:
        raise ValueError(f"no base model: set {BASE_MODEL_ENV} (or the asset's base_model_path) to a local "
                         "Qwen2.5-VL directory; `eemo demo` builds a tiny offline one")
    path = Path(value).expanduser().resolve()
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"base model {path} is not a transformers model directory (no config.json)")
    return path


def _run_settings(storage: StorageResource, input_paths: InputPathsResource) -> Settings:
    return dataclasses.replace(input_paths.settings(), storage=storage.path)


def _dataset(storage: Path, name: str) -> tuple[Path, str]:
    from eemo_pipeline.lineage import file_data_version

    path = asset_path(storage, name)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: materialize {name} first")
    return path, file_data_version(path)


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]) if path.is_file() else "(none)"


def _curves_markdown(metrics: list[dict[str, Any]], limit: int = 40) -> str:
    """The logged curves as a Markdown table (at most ``limit`` evenly spaced steps, the last one included)."""
    steps = [m for m in metrics if "train_runtime" not in m]
    if not steps:
        return "(no steps logged)"
    columns = [c for c in curve_columns() if any(isinstance(m.get(c), int | float) for m in steps)]
    stride = max(1, -(-len(steps) // limit))
    shown = steps[::stride] + ([steps[-1]] if (len(steps) - 1) % stride else [])
    cell = lambda v: f"{v:.4g}" if isinstance(v, int | float) else "-"  # noqa: E731
    lines = ["| step | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    lines += [f"| {m['step']} | " + " | ".join(cell(m.get(c)) for c in columns) + " |" for m in shown]
    return "\n".join(lines)


def train_stage(context: AssetExecutionContext, config: LaunchConfig, launcher: TrainingLauncherResource,
                run_settings: Settings, base: Path, stage: str, dataset_name: str, settings: dict[str, Any],
                init_adapter: str | None = None, embedding_model: str | None = None) -> Output[pl.DataFrame]:
    """Launch (or reuse, or resume) one training run with ``launcher`` and describe its result. The trainer process
    gets ``run_settings`` in its environment (the GRPO rewards read the VAD lexicon there)."""
    from eemo_pipeline.training.launch import (
        TrainingJob,
        accelerate_command,
        completed,
        fingerprint,
        launch_layout,
        log_path,
        read_metrics,
    )

    storage = run_settings.storage
    dataset, dataset_hash = _dataset(storage, dataset_name)
    name = f"{stage}_checkpoint"
    # Paths inside the storage root enter the fingerprint and the row relative to it: a rebuild elsewhere is the same.
    relative = lambda path: storage_relative(path, storage) if path else None  # noqa: E731
    accelerate_config = Path(config.accelerate_config).expanduser().resolve() if config.accelerate_config else None
    layout = launch_layout(config.num_processes, accelerate_config, config.device)
    run_dir = storage / name / fingerprint(stage, relative(base), dataset_hash, settings, relative(init_adapter),
                                           embedding_model, launch=layout)
    job = TrainingJob(stage=stage, base_model=str(base), dataset=str(dataset), run_dir=str(run_dir),
                      settings=settings, init_adapter=init_adapter, embedding_model=embedding_model,
                      merge=config.merge, device=config.device)
    if completed(run_dir):
        context.log.info(f"{stage}: reusing the finished run {run_dir} (same inputs and settings)")
    else:
        command = accelerate_command(job.write(), config.num_processes, accelerate_config, cpu=config.device == "cpu")
        context.log.info(f"{stage}: {' '.join(command)}")
        try:
            launcher.run(context, command, run_settings.environment(), cwd=storage)
        except TrainerFailed as error:
            context.log.error(f"{stage}: the trainer failed ({error}); the end of {log_path(run_dir)}:\n"
                              f"{_tail(log_path(run_dir))}")
            context.log.warning(f"{stage}: its last checkpoint stays in {run_dir}; relaunching")
            raise RetryRequested(max_retries=TRAINER_RELAUNCHES,
                                 seconds_to_wait=5 * 2 ** context.retry_number) from error
    import json

    done = json.loads((run_dir / "DONE").read_text())
    checkpoint = run_dir / done["checkpoint"]
    metrics = read_metrics(run_dir)
    merged = run_dir / "merged"
    row = {
        "stage": stage, "checkpoint_path": relative(checkpoint), "base_model_path": relative(base),
        "global_step": int(done["global_step"]), "run_dir": relative(run_dir), "dataset_path": relative(dataset),
        "dataset_hash": dataset_hash, "merged_path": relative(merged) if merged.is_dir() else None,
        "resumed_from": relative(done.get("resumed_from")),
    }
    # The last logged value of every metric (the trainer's closing summary included: train_loss, train_runtime).
    final = {key: value for entry in metrics for key, value in entry.items() if isinstance(value, int | float)}
    card = (checkpoint / "README.md").read_text(encoding="utf-8")
    frame = pl.DataFrame([row], schema=CHECKPOINT_SCHEMA)
    return Output(frame, metadata={
        **frame_metadata(frame),
        "checkpoint_path": MetadataValue.path(str(checkpoint)),
        "global_step": row["global_step"],
        "resumed_from": row["resumed_from"] or "-",
        # How the trainer was spread over processes (DONE records it).
        "world_size": int(done.get("world_size", 1)),
        "distributed_type": done.get("distributed_type", "NO"),
        "process_group_backend": done.get("backend") or "-",
        "training_curves": MetadataValue.md(_curves_markdown(metrics)),
        "model_card": MetadataValue.md(card),
        **{f"final/{key}": float(value) for key, value in final.items() if key != "step"},
    })


@asset(group_name=GROUP, kinds={"pytorch", "peft"}, pool="gpu", code_version="1",
       deps=["sft_dataset"])
def sft_checkpoint(context: AssetExecutionContext, config: SFTTrainingConfig, storage: StorageResource,
                   input_paths: InputPathsResource, training_launcher: TrainingLauncherResource) -> Output[pl.DataFrame]:
    """Stage 1: LoRA SFT (TRL SFTTrainer, PEFT) of the base model on the EEmoDB-QA export, out of process; or,
    with ``finetune: full``, full fine-tuning (the checkpoint is then a whole model)."""
    run_settings = _run_settings(storage, input_paths)
    return train_stage(context, config, training_launcher, run_settings, base_model_path(config, run_settings.base_model),
                       "sft", "sft_dataset", _settings(config, SFTSettings))


@asset(group_name=GROUP, kinds={"pytorch", "peft"}, pool="gpu", code_version="1",
       deps=["grpo_dataset"])
def grpo_checkpoint(context: AssetExecutionContext, config: GRPOTrainingConfig, storage: StorageResource,
                    input_paths: InputPathsResource, training_launcher: TrainingLauncherResource,
                    sft_checkpoint: pl.DataFrame) -> Output[pl.DataFrame]:
    """Stage 2: GRPO (TRL GRPOTrainer) from the stage-1 adapter on the EEmoDB-Assess export with the task
    rewards (of the configured ``tasks``), out of process. After a full fine-tune the stage-1 model is the base
    model and GRPO trains a fresh LoRA on it."""
    stage1 = sft_checkpoint.row(0, named=True)
    run_settings = _run_settings(storage, input_paths)
    settings = _settings(config, GRPOSettings)
    checkpoint = from_storage(stage1["checkpoint_path"], storage.path)
    if not (checkpoint / "adapter_config.json").is_file():
        if config.base_model_path:
            context.log.warning(f"grpo: base_model_path is ignored, the fully fine-tuned {checkpoint} is the base")
        return train_stage(context, config, training_launcher, run_settings, base_model_path(LaunchConfig(), checkpoint),
                           "grpo", "grpo_dataset", settings, embedding_model=config.embedding_model_path or None)
    stage1_base = from_storage(stage1["base_model_path"], storage.path) if stage1["base_model_path"] else None
    # The adapter belongs to its base model.
    base = base_model_path(config, stage1_base or run_settings.base_model)
    return train_stage(context, config, training_launcher, run_settings, base, "grpo", "grpo_dataset", settings,
                       init_adapter=str(checkpoint), embedding_model=config.embedding_model_path or None)
