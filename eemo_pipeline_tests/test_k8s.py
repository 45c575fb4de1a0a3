"""The Kubernetes deployment as far as a machine without a cluster can run it: the cluster code location
(``eemo_pipeline.k8s_definitions``) loads, and dagster-k8s's own code creates the run worker Job (the
``K8sRunLauncher`` of deploy/dagster-k8s.yaml) and a step Job (``k8s_job_executor`` with
deploy/k8s/training-gpu-run-config.yaml) through the real ``kubernetes`` client against a local API endpoint
(``local_kubernetes``). Each object is what a cluster would receive, and is validated against the Kubernetes
OpenAPI schema (kubernetes-validate, strict: an unknown field fails). The training pod is in
training/test_k8s_training_pod.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from eemo_pipeline_tests.local_kubernetes import LocalKubernetes, validate

pytest.importorskip("dagster_k8s", reason="dagster-k8s comes with the test extra (scripts/bootstrap.sh)")
kubernetes_validate = pytest.importorskip("kubernetes_validate")

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
IMAGE = "registry.example/eemo-pipeline:0.1.0"
NAMESPACE = "eemo"
LAUNCHER_ENVIRONMENT = {"DAGSTER_K8S_NAMESPACE": NAMESPACE, "DAGSTER_PG_USERNAME": "dagster",
                        "DAGSTER_PG_HOST": "postgresql.eemo.svc", "DAGSTER_PG_DB": "dagster"}


def test_the_validator_rejects_an_invalid_object() -> None:
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "x"},
           "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}], "restartPolicy": "Never"}}}}
    validate(job)
    for broken in ({"backoffLimit": "four"}, {"template": {"spec": {"containers": [{"name": "c", "volume_mounts": []}]}}}):
        with pytest.raises(kubernetes_validate.ValidationError):
            validate({**job, "spec": {**job["spec"], **broken}})


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch):
    """The local API endpoint and a Dagster instance whose run launcher is deploy/dagster-k8s.yaml's, pointed at it
    (storage stays SQLite: the launcher does not touch it). The variables it reads from the environment of the
    daemon or webserver that launches a run are set here."""
    from dagster import DagsterInstance

    for name, value in LAUNCHER_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    launcher = yaml.safe_load((DEPLOY / "dagster-k8s.yaml").read_text())["run_launcher"]
    with LocalKubernetes(tmp_path, NAMESPACE) as kube:
        launcher["config"] |= {"load_incluster_config": False, "kubeconfig_file": str(kube.kubeconfig)}
        home = tmp_path / "dagster_home"
        home.mkdir()
        with DagsterInstance.local_temp(str(home), overrides={"run_launcher": launcher}) as instance:
            yield kube, instance


def _run(instance, job_name: str, run_config: dict):
    """A run of ``job_name`` of the cluster code location, as the webserver creates it (its code origin names the
    image, as a user deployment reports it); returns the reconstructable job and the run."""
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    from eemo_pipeline.k8s_definitions import defs

    repository = ReconstructableRepository.for_module("eemo_pipeline.k8s_definitions", "defs",
                                                      working_directory=str(REPO), container_image=IMAGE)
    job = repository.get_reconstructable_job(job_name)
    run = instance.create_run_for_job(defs.resolve_job_def(job_name), run_config=run_config,
                                      job_code_origin=job.get_python_origin())
    return job, run


def _launch_step(instance, job_name: str, step: str, run_config: dict) -> None:
    """What ``k8s_job_executor`` does for one step of a run of ``job_name``: its step handler creates the Job."""
    from dagster._config import process_config
    from dagster._core.execution.api import create_execution_plan
    from dagster._core.execution.context.system import PlanData, PlanOrchestrationContext
    from dagster._core.execution.context_creation_job import create_context_free_log_manager
    from dagster._core.execution.retries import RetryMode
    from dagster._core.executor.init import InitExecutorContext
    from dagster._core.executor.step_delegating.step_handler.base import StepHandlerContext
    from dagster._grpc.types import ExecuteStepArgs
    from dagster_k8s import k8s_job_executor

    job, run = _run(instance, job_name, run_config)
    processed = process_config(k8s_job_executor.config_schema.config_type, run_config["execution"]["config"])
    assert processed.success, processed.errors
    executor = k8s_job_executor.executor_creation_fn(InitExecutorContext(
        job=job, executor_def=k8s_job_executor, executor_config=processed.value, instance=instance))
    plan = create_execution_plan(job, run_config=run_config)
    # The step handler's context as the step-delegating executor builds it.
    plan_context = PlanOrchestrationContext(
        plan_data=PlanData(job=job, dagster_run=run, instance=instance, execution_plan=plan, raise_on_error=True,
                           retry_mode=RetryMode.DISABLED),
        log_manager=create_context_free_log_manager(instance, run), executor=executor, output_capture=None)
    context = StepHandlerContext(
        instance=instance, plan_context=plan_context, steps=plan.steps, dagster_run=run,
        execute_step_args=ExecuteStepArgs(job_origin=job.get_python_origin(), run_id=run.run_id,
                                          step_keys_to_execute=[step], instance_ref=instance.get_ref(),
                                          print_serialized_events=False))
    list(executor._step_handler.launch_step(context))  # noqa: SLF001 - the handler the executor drives


def _container(job: dict) -> dict:
    return job["spec"]["template"]["spec"]["containers"][0]


def test_the_cluster_code_location_runs_every_step_as_a_kubernetes_job() -> None:
    from eemo_pipeline.definitions import defs as local
    from eemo_pipeline.k8s_definitions import defs

    assert {job.name: job.executor_def.name for job in defs.resolve_all_job_defs()} == {
        job.name: "k8s" for job in local.resolve_all_job_defs()}
    assert defs.resources["training_launcher"].kind == "k8s"
    assert (REPO / defs.resources["training_launcher"].pod_spec).is_file()  # from the image's working directory
    assert local.resources["training_launcher"].kind == "subprocess"
    assert {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()} == {
        key.to_user_string() for key in local.resolve_asset_graph().get_all_asset_keys()}


def test_the_run_launcher_creates_a_valid_run_worker_job(cluster) -> None:
    from dagster._core.launcher import LaunchRunContext

    kube, instance = cluster
    launcher_config = yaml.safe_load((DEPLOY / "dagster-k8s.yaml").read_text())["run_launcher"]["config"]
    _, run = _run(instance, "train_models", yaml.safe_load((DEPLOY / "k8s" / "training-gpu-run-config.yaml").read_text()))
    instance.run_launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))

    [(namespace, job)] = kube.created
    validate(job)
    assert namespace == NAMESPACE and job["kind"] == "Job"
    container = _container(job)
    assert container["image"] == IMAGE and container["args"][:3] == ["dagster", "api", "execute_run"]
    assert container["resources"] == launcher_config["resources"]  # the run worker asks for no GPU
    env = {item["name"]: item for item in container["env"]}
    assert env["EEMO_STORAGE"]["value"] == "/data/eemo" and env["DAGSTER_HOME"]["value"] == "/opt/dagster/dagster_home"
    assert {name: env[name]["value"] for name in LAUNCHER_ENVIRONMENT if name.startswith("DAGSTER_PG")} == {
        name: value for name, value in LAUNCHER_ENVIRONMENT.items() if name.startswith("DAGSTER_PG")}
    # Secrets travel as references, never as values.
    assert env["DAGSTER_PG_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "dagster-postgresql-secret"
    assert [source["secretRef"]["name"] for source in container["envFrom"]] == ["eemo-endpoints"]
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "eemo-dagster"
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "eemo-storage"
    assert container["volumeMounts"] == [{"name": "eemo-storage", "mountPath": "/data/eemo"}]
    # The launcher records the image on the run: the training launcher starts its pod from it.
    assert instance.get_run_by_id(run.run_id).tags["dagster/image"] == IMAGE


def test_the_executor_creates_valid_step_jobs_with_gpus_for_training_only(cluster) -> None:
    kube, instance = cluster
    run_config = yaml.safe_load((DEPLOY / "k8s" / "training-gpu-run-config.yaml").read_text())
    _launch_step(instance, "train_models", "sft_checkpoint", run_config)
    _launch_step(instance, "build_subsets", "sft_dataset", run_config)

    (_, training), (_, export) = kube.created
    for job in (training, export):
        validate(job)
        assert _container(job)["args"][:3] == ["dagster", "api", "execute_step"]
        assert _container(job)["image"] == IMAGE
        assert {item["name"]: item.get("value") for item in _container(job)["env"]}["EEMO_STORAGE"] == "/data/eemo"
    assert _container(training)["resources"] == {"requests": {"cpu": "16", "memory": "120Gi"},
                                                 "limits": {"nvidia.com/gpu": "4", "memory": "200Gi"}}
    assert training["spec"]["template"]["spec"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert training["spec"]["template"]["spec"]["tolerations"][0]["key"] == "nvidia.com/gpu"
    # Every other step gets the small default pod (step_k8s_config), under the run launcher's memory limit.
    assert _container(export)["resources"] == {"requests": {"cpu": "1", "memory": "4Gi"}, "limits": {"memory": "16Gi"}}
    assert "nodeSelector" not in export["spec"]["template"]["spec"]
