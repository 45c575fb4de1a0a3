"""The launch plumbing that needs no training: job files, fingerprints, the accelerate command, metrics."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from eemo_pipeline.training.launch import (
    TrainingJob,
    accelerate_command,
    completed,
    fingerprint,
    launch_layout,
    rank_file,
    read_metrics,
)

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_job_files_round_trip_and_reject_an_unknown_stage(tmp_path: Path) -> None:
    job = TrainingJob(stage="grpo", base_model="/m", dataset="/d.parquet", run_dir=str(tmp_path / "run"),
                      settings={"beta": 0.04}, init_adapter="/a", merge=True)
    assert TrainingJob.read(job.write()) == job
    assert not list((tmp_path / "run").glob("*.partial"))
    with pytest.raises(ValueError, match="stage must be one of"):
        TrainingJob(stage="dpo", base_model="/m", dataset="/d", run_dir="/r")


def test_fingerprint_changes_with_any_input_or_setting(tmp_path: Path) -> None:
    base = fingerprint("sft", str(tmp_path), "hash1", {"lr": 1})
    assert base == fingerprint("sft", str(tmp_path), "hash1", {"lr": 1})
    others = {fingerprint("grpo", str(tmp_path), "hash1", {"lr": 1}),
              fingerprint("sft", str(tmp_path / "x"), "hash1", {"lr": 1}),
              fingerprint("sft", str(tmp_path), "hash2", {"lr": 1}),
              fingerprint("sft", str(tmp_path), "hash1", {"lr": 2}),
              fingerprint("sft", str(tmp_path), "hash1", {"lr": 1}, init_adapter="/a")}
    assert base not in others and len(others) == 5


def test_fingerprint_changes_with_the_launch_layout(tmp_path: Path) -> None:
    """World size, device and the accelerate config's content change the trained weights: each is its own run."""
    run = lambda layout: fingerprint("sft", "base", "hash1", {"lr": 1}, launch=layout)  # noqa: E731
    zero2 = tmp_path / "zero2.yaml"
    zero2.write_text((DEPLOY / "accelerate" / "deepspeed_zero2.yaml").read_text())
    moved = tmp_path / "moved.yaml"  # another node's copy: only its rank and address differ
    moved.write_text(zero2.read_text().replace("machine_rank: 0", "machine_rank: 1") + "main_process_ip: 10.0.0.2\n")
    layouts = [launch_layout(1, device="cpu"), launch_layout(2, device="cpu"), launch_layout(1, device="cuda"),
               launch_layout(config_file=DEPLOY / "accelerate" / "multi_gpu.yaml"), launch_layout(config_file=zero2)]
    assert len({run(layout) for layout in layouts}) == len(layouts)
    assert run(launch_layout(config_file=moved)) == run(launch_layout(config_file=zero2))
    assert launch_layout(config_file=zero2)["accelerate"]["num_processes"] == 4
    with pytest.raises(FileNotFoundError, match="accelerate config .*missing.yaml does not exist"):
        launch_layout(config_file=tmp_path / "missing.yaml")


def _accelerate_arguments(command: list[str]):
    """``command``'s arguments as accelerate 1.16's own parser and launch checks take them (what it would start)."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    assert command[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    args, _, _ = _validate_launch_command(launch_command_parser().parse_args(command[3:]))
    return args


def test_accelerate_takes_the_command_of_every_layout() -> None:
    pytest.importorskip("accelerate", reason="accelerate comes with the train extra")
    command = accelerate_command(Path("/r/job.json"), num_processes=4)
    assert command[-3:] == ["-m", "eemo_pipeline.training.launch", "/r/job.json"]
    # Several processes: accelerate's torchrun launcher (on a CPU too, where the job's device makes them use gloo),
    # on a free port. One process on a CPU: the single-process launcher.
    for processes, cpu in ((4, False), (2, True), (1, True), (1, False)):
        args = _accelerate_arguments(accelerate_command(Path("/r/job.json"), processes, cpu=cpu))
        assert (args.num_processes, args.multi_gpu, args.cpu) == (processes, processes > 1, cpu and processes == 1)
        assert args.main_process_port == (0 if processes > 1 else None)
    configured = accelerate_command(Path("/r/job.json"), config_file=DEPLOY / "accelerate" / "multi_gpu.yaml", cpu=True)
    assert "--num_processes" not in configured and "--cpu" not in configured  # --cpu would start one process
    assert _accelerate_arguments(configured).num_processes == 4


def test_each_rank_writes_its_own_files(tmp_path: Path) -> None:
    assert rank_file(tmp_path, "completions.jsonl") == tmp_path / "completions.jsonl"
    assert rank_file(tmp_path, "completions.jsonl", 3) == tmp_path / "completions.rank3.jsonl"
    assert rank_file(tmp_path, "train.log", 1) == tmp_path / "train.rank1.log"


def test_read_metrics_keeps_the_later_entry_of_a_step_logged_twice(tmp_path: Path) -> None:
    lines = [{"step": 1, "loss": 3.0}, {"step": 2, "loss": 2.5}, {"step": 3, "loss": 2.4},  # then a crash
             {"step": 3, "loss": 2.2}, {"step": 4, "loss": 2.0}, {"step": 4, "train_runtime": 9.0}]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    metrics = read_metrics(tmp_path)
    assert [(m["step"], m.get("loss")) for m in metrics] == [(1, 3.0), (2, 2.5), (3, 2.2), (4, 2.0), (4, None)]
    assert read_metrics(tmp_path / "missing") == [] and not completed(tmp_path)


def test_curves_table_is_sampled_and_keeps_the_last_step() -> None:
    from eemo_pipeline.assets.training import _curves_markdown

    metrics = [{"step": s, "loss": 10.0 / s, "kl": None} for s in range(1, 101)]
    table = _curves_markdown(metrics, limit=10).splitlines()
    assert table[0] == "| step | loss |"
    rows = [line.split(" | ")[0].strip("| ") for line in table[2:]]
    assert rows[0] == "1" and rows[-1] == "100" and len(rows) <= 11
    assert _curves_markdown([]) == "(no steps logged)"


def test_base_model_errors_name_the_fix(tmp_path: Path, monkeypatch) -> None:
    from eemo_pipeline.assets.training import SFTTrainingConfig, base_model_path

    monkeypatch.delenv("EEMO_BASE_MODEL", raising=False)
    with pytest.raises(ValueError, match="set EEMO_BASE_MODEL"):
        base_model_path(SFTTrainingConfig())
    with pytest.raises(FileNotFoundError, match="no config.json"):
        base_model_path(SFTTrainingConfig(base_model_path=str(tmp_path)))
    (tmp_path / "config.json").write_text("{}")
    assert base_model_path(SFTTrainingConfig(), default=str(tmp_path)) == tmp_path.resolve()
