"""The code location on Kubernetes (the image runs ``dagster api grpc -m eemo_pipeline.k8s_definitions``): the
assets, jobs, schedules and sensors of ``eemo_pipeline.definitions``, with every step in a Kubernetes Job of its own
(dagster-k8s's ``k8s_job_executor``; per-step resources come as run config, deploy/k8s/training-gpu-run-config.yaml)
and the training process in a GPU pod of its own (the ``training_launcher`` resource with ``kind: k8s``, pod spec
deploy/k8s/pipes-training-pod.yaml). Needs dagster-k8s (the ``k8s`` extra and docs/deploy.md); the laptop code
location never imports it."""

from dagster import Definitions
from dagster_k8s import k8s_job_executor

from eemo_pipeline.definitions import defs as local
from eemo_pipeline.resources import TrainingLauncherResource

# Relative to the working directory, /opt/eemo in the image (the Dockerfile copies deploy/ there).
TRAINING_POD_SPEC = "deploy/k8s/pipes-training-pod.yaml"

defs = Definitions(
    assets=local.assets, asset_checks=local.asset_checks, jobs=local.jobs, schedules=local.schedules,
    sensors=local.sensors, executor=k8s_job_executor,
    resources={**local.resources, "training_launcher": TrainingLauncherResource(kind="k8s", pod_spec=TRAINING_POD_SPEC)},
)
