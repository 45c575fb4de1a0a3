"""The training launcher on Kubernetes: ``sft_checkpoint`` with ``training_launcher`` of kind k8s starts its trainer
through dagster-k8s's ``PipesK8sClient`` as a pod of deploy/k8s/pipes-training-pod.yaml. The pod goes to a local
API endpoint (``local_kubernetes``), which validates nothing and runs the pod's command here: the tiny SFT trains,
and its metrics and result reach Dagster through the pod's log, as in a cluster. The pod is validated against the
Kubernetes OpenAPI schema."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import polars as pl
import pytest

from eemo_pipeline.storage import from_storage
from eemo_pipeline_tests.local_kubernetes import LocalKubernetes, validate
from eemo_pipeline_tests.training.conftest import write_exports
from eemo_pipeline_tests.training.test_training_assets import SFT_CONFIG

pytest.importorskip("trl", reason="the train extra (torch, transformers, peft, trl) is not installed")
pytest.importorskip("dagster_k8s", reason="dagster-k8s comes with the test extra (scripts/bootstrap.sh)")
pytest.importorskip("kubernetes_validate")
pytestmark = pytest.mark.slow

POD_SPEC = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "pipes-training-pod.yaml"
IMAGE = "registry.example/eemo-pipeline:0.1.0"


def test_the_trainer_runs_in_a_pod_and_reports_through_its_log(tmp_path: Path, monkeypatch, tiny_model: Path,
                                                               sft_records, grpo_records) -> None:
    from dagster import DagsterInstance, materialize

    from eemo_pipeline.assets.training import sft_checkpoint
    from eemo_pipeline.resources import (
        InputPathsResource,
        ParquetIOManager,
        StorageResource,
        TrainingLauncherResource,
    )

    storage = tmp_path / "storage"
    write_exports(storage, sft_records, grpo_records)
    monkeypatch.setenv("EEMO_BASE_MODEL", str(tiny_model))
    store = StorageResource(root=str(storage))
    instance = DagsterInstance.ephemeral()
    with LocalKubernetes(tmp_path, namespace="eemo") as kube:
        launcher = TrainingLauncherResource(kind="k8s", pod_spec=str(POD_SPEC), image=IMAGE,
                                            kubeconfig_file=str(kube.kubeconfig))
        result = materialize([sft_checkpoint], instance=instance, raise_on_error=False,
                             run_config={"ops": {"sft_checkpoint": {"config": SFT_CONFIG}}},
                             resources={"io_manager": ParquetIOManager(storage=store), "storage": store,
                                        "input_paths": InputPathsResource(), "training_launcher": launcher})
    assert result.success

    [(namespace, pod)] = kube.created
    validate(pod)
    assert namespace == "eemo"  # the kubeconfig context's namespace: the one the step runs in
    container = pod["spec"]["containers"][0]
    assert container["image"] == IMAGE and container["workingDir"] == str(storage)
    assert container["command"][:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "4"  # the pod spec's GPUs
    env = {item["name"]: item["value"] for item in container["env"]}
    assert len(env) == len(container["env"])  # no name set twice: the run's EEMO_STORAGE replaced the spec's
    assert {"DAGSTER_PIPES_CONTEXT", "DAGSTER_PIPES_MESSAGES"} <= set(env) and env["EEMO_STORAGE"] == str(storage)
    assert env["NCCL_DEBUG"] == "WARN"  # the pod spec's own variables stay

    row = pl.read_parquet(storage / "sft_checkpoint.parquet").row(0, named=True)
    assert row["global_step"] == 4
    # The metrics came back as Pipes messages on the pod's log; the library output stayed in train.log.
    logs = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert any(line.startswith("step 1/4 ") and '"loss"' in line for line in logs)
    assert any("saved the adapter" in line for line in logs)
    train_log = (from_storage(row["run_dir"], storage) / "train.log").read_text()
    assert "it/s" in train_log and "__dagster_pipes_version" not in train_log
    assert json.loads((from_storage(row["run_dir"], storage) / "DONE").read_text())["world_size"] == 1
