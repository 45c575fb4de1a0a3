"""Table 4's ablations as settings and named jobs: full fine-tuning in stage 1, GRPO on a subset of tasks, and the
preset jobs whose default run config the launchpad shows. No training here (test_ablations.py trains)."""

from __future__ import annotations

from pathlib import Path

import pytest

from eemo_pipeline.tasks.registry import TASKS
from eemo_pipeline.training.grpo import GRPOSettings, reward_parts, task_rows
from eemo_pipeline.training.launch import TrainingJob, fingerprint
from eemo_pipeline.training.presets import TABLE4_PRESETS
from eemo_pipeline.training.sft import SFTSettings


def test_finetune_is_lora_by_default_and_checked() -> None:
    assert SFTSettings().finetune == "lora"
    assert SFTSettings(finetune="full").finetune == "full"
    with pytest.raises(ValueError, match="finetune must be one of"):
        SFTSettings(finetune="qlora")


def test_grpo_tasks_default_to_every_registered_task_and_are_normalised() -> None:
    assert GRPOSettings().tasks == tuple(TASKS) and tuple(TASKS)[:3] == ("ranking", "vad", "dominant_emotion")
    assert GRPOSettings(tasks=["vad", "ranking", "vad"]).tasks == ("ranking", "vad")  # registry order, no repeats
    for bad in (["vad", "sentiment"], []):
        with pytest.raises(ValueError, match="tasks must name one or more of " + ", ".join(TASKS)):
            GRPOSettings(tasks=bad)


def test_task_rows_and_reward_parts_keep_only_the_chosen_tasks() -> None:
    records = [{"task": "ranking", "sub_task": "emotion_ranking", "solution": "joy, fear, anger", "row_id": "a"},
               {"task": "vad", "sub_task": "valence", "solution": "0.5000", "row_id": "b"},
               {"task": "dominant_emotion", "sub_task": "ekman7", "solution": "joy", "row_id": "c"},
               {"task": "vad", "sub_task": "arousal", "solution": "0.2500", "row_id": "d"}]
    assert [r["row_id"] for r in task_rows(records, ("vad",))] == ["b", "d"]
    assert list(reward_parts(("ranking", "vad"))) == ["format", "ranking", "vad"]
    assert list(reward_parts(tuple(TASKS))) == ["format", *(task.reward_name for task in TASKS.values())]
    with pytest.raises(ValueError, match="no rows of the tasks"):
        task_rows(records[:1], ("vad",))


def test_a_row_with_an_unusable_truth_stops_grpo_before_training_naming_it() -> None:
    records = [{"task": "vad", "sub_task": "valence", "solution": "0.5000", "row_id": "b"},
               {"task": "dominant_emotion", "sub_task": "artemis9", "solution": "something else", "row_id": "c"}]
    with pytest.raises(ValueError, match=r"row 1 \(row_id 'c'\), task 'dominant_emotion', sub_task 'artemis9', "
                                         r"solution 'something else': the solution is no label of artemis9"):
        task_rows(records, tuple(TASKS))
    assert [r["row_id"] for r in task_rows(records, ("vad",))] == ["b"]  # the other task's rows are not read


def test_the_new_settings_enter_the_run_fingerprint() -> None:
    from eemo_pipeline.assets.training import GRPOTrainingConfig, SFTTrainingConfig, _settings

    sft = lambda **values: fingerprint("sft", "base", "h", _settings(SFTTrainingConfig(**values), SFTSettings))  # noqa: E731
    grpo = lambda **values: fingerprint("grpo", "base", "h", _settings(GRPOTrainingConfig(**values), GRPOSettings))  # noqa: E731
    assert sft() != sft(finetune="full")
    assert grpo() != grpo(tasks=["vad"]) != grpo(tasks=["ranking", "vad"])
    # The same subset in another order or with a repeat is the same run.
    assert grpo(tasks=["vad", "ranking"]) == grpo(tasks=["ranking", "vad", "vad"]) == grpo(tasks=["ranking", "vad"])
    assert grpo(tasks=list(TASKS)) == grpo()
    with pytest.raises(ValueError, match="finetune must be one of"):
        _settings(SFTTrainingConfig(finetune="partial"), SFTSettings)


def test_a_full_finetune_job_saves_a_model_folder_not_an_adapter(tmp_path: Path) -> None:
    job = lambda stage, finetune: TrainingJob(stage=stage, base_model="/m", dataset="/d", run_dir=str(tmp_path),  # noqa: E731
                                              settings={"finetune": finetune})
    assert job("sft", "full").full_finetune and job("sft", "full").checkpoint_dir == tmp_path / "model"
    assert job("sft", "lora").checkpoint_dir == tmp_path / "adapter"
    assert job("grpo", "full").checkpoint_dir == tmp_path / "adapter"  # GRPO always trains a LoRA


def test_reports_name_a_full_checkpoint_by_its_stage(tmp_path: Path) -> None:
    from eemo_pipeline.evaluation.checkpoints import checkpoint_name

    for folder in ("adapter", "model"):
        directory = tmp_path / "sft_checkpoint" / "0123abcd" / folder
        directory.mkdir(parents=True)
        assert checkpoint_name(directory) == "sft"


def test_each_table4_preset_is_a_job_with_its_settings_as_default_run_config() -> None:
    from eemo_pipeline.definitions import defs

    assert [(p.job, p.table4_row) for p in TABLE4_PRESETS] == [
        ("train_ablation_full_finetune", 1), ("train_ablation_lora_sft_only", 2), ("train_ablation_grpo_vad", 3),
        ("train_ablation_grpo_vad_ranking", 4)]
    for preset in TABLE4_PRESETS:
        job = defs.resolve_job_def(preset.job)
        assert job.description.startswith(f"Table 4 row ({preset.table4_row}): ")
        assert {key.to_user_string() for key in job.asset_layer.executable_asset_keys} == set(preset.assets)
        assert job.run_config == preset.run_config()
        # What a launch without any config runs: the preset's settings over the defaults, valid as a whole.
        ops = job.config_mapping.resolve_from_unvalidated_config({})["ops"] if job.config_mapping else None
        if preset.sft:
            sft = ops["sft_checkpoint"]["config"]
            assert {key: sft[key] for key in preset.sft} == preset.sft
            SFTSettings(**{key: sft[key] for key in SFTSettings.__dataclass_fields__})
        if preset.grpo:
            assert ops["grpo_checkpoint"]["config"]["tasks"] == preset.grpo["tasks"]
    full = defs.resolve_job_def("train_ablation_full_finetune").run_config["ops"]["sft_checkpoint"]["config"]
    assert full == {"finetune": "full", "learning_rate": 1e-5}


def test_the_launchpad_gets_the_preset_and_a_run_config_for_another_op_keeps_it() -> None:
    from dagster._core.remote_representation.external_data import active_presets_from_job_def

    from eemo_pipeline.definitions import defs

    job = defs.resolve_job_def("train_ablation_grpo_vad")
    # The launchpad opens a job with its "default" preset.
    assert [(p.name, p.run_config) for p in active_presets_from_job_def(job)] == [("default", {"ops": {"grpo_checkpoint": {"config": {"tasks": ["vad"]}}}})]
    ops = job.config_mapping.resolve_from_unvalidated_config({"ops": {"sft_checkpoint": {"config": {"device": "cpu"}}}})["ops"]
    assert (ops["grpo_checkpoint"]["config"]["tasks"], ops["sft_checkpoint"]["config"]["device"]) == (["vad"], "cpu")
    # Dagster's job presets fill in whole ops: a run config that sets the op's own config replaces the preset's
    # values (README, Training presets), as the launchpad lets one change them.
    changed = job.config_mapping.resolve_from_unvalidated_config(
        {"ops": {"grpo_checkpoint": {"config": {"tasks": ["dominant_emotion"]}}}})["ops"]["grpo_checkpoint"]
    assert changed["config"]["tasks"] == ["dominant_emotion"]
