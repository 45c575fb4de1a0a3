"""Every configuration in deploy/ loads: instance YAMLs through Dagster's instance schema, the Kubernetes
launcher and executor configs through dagster-k8s's schemas (when installed; otherwise their keys against the
0.29.x schemas and the asset graph), the accelerate configs through accelerate's loader; docs/deploy.md names
only files that exist."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
INSTANCE_FILES = ("dagster-postgres.yaml", "dagster-k8s.yaml")
ACCELERATE_FILES = ("single_gpu.yaml", "multi_gpu.yaml", "deepspeed_zero2.yaml", "fsdp.yaml")
TRAINING_ASSETS = ("sft_checkpoint", "grpo_checkpoint")
# Fields of K8sRunLauncher.config_type() and of k8s_job_executor's schema in dagster-k8s 0.29.27, and of a
# UserDefinedDagsterK8sConfig (per-step config): used when dagster-k8s is not installed.
K8S_RUN_LAUNCHER_FIELDS = {
    "dagster_home", "env_config_maps", "env_secrets", "env_vars", "fail_pod_on_run_failure", "image_pull_policy",
    "image_pull_secrets", "instance_config_map", "job_image", "job_namespace", "k8s_api_ssl_ca_cert_file",
    "kubeconfig_file", "labels", "load_incluster_config", "only_allow_user_defined_env_vars",
    "only_allow_user_defined_k8s_config_fields", "postgres_password_secret", "resources", "run_k8s_config",
    "scheduler_name", "security_context", "service_account_name", "volume_mounts", "volumes",
}
K8S_EXECUTOR_FIELDS = {
    "enable_owner_references", "env_config_maps", "env_secrets", "env_vars", "image_pull_policy",
    "image_pull_secrets", "job_image", "job_namespace", "kubeconfig_file", "labels", "load_incluster_config",
    "max_concurrent", "per_step_k8s_config", "resources", "retries", "scheduler_name", "security_context",
    "service_account_name", "step_dependency_config", "step_k8s_config", "tag_concurrency_limits", "volume_mounts",
    "volumes",
}
K8S_STEP_CONFIG_FIELDS = {"container_config", "pod_template_spec_metadata", "pod_spec_config", "job_config",
                          "job_metadata", "job_spec_config", "merge_behavior"}


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _instance_config(name: str, tmp_path: Path) -> dict:
    from dagster._core.instance.config import dagster_instance_config

    home = tmp_path / name.removesuffix(".yaml")
    home.mkdir()
    shutil.copyfile(DEPLOY / name, home / "dagster.yaml")
    config, custom_class = dagster_instance_config(str(home))
    assert custom_class is None
    return config


@pytest.mark.parametrize("name", INSTANCE_FILES)
def test_instance_yaml_validates_against_dagsters_schema(name: str, tmp_path: Path) -> None:
    config = _instance_config(name, tmp_path)
    postgres = config["storage"]["postgres"]["postgres_db"]
    # Secrets are environment references, resolved when the instance loads, never literals in the file.
    assert postgres["password"] == {"env": "DAGSTER_PG_PASSWORD"}
    assert all(isinstance(postgres[field], dict) and "env" in postgres[field] for field in ("username", "hostname", "db_name"))
    # The driver the postgres extra and the image install: SQLAlchemy 2.1 reads a plain postgresql:// as psycopg 3.
    assert postgres["scheme"] == "postgresql+psycopg2"
    assert config["telemetry"] == {"enabled": False}
    assert config["run_retries"]["enabled"] is True


def test_k8s_run_launcher_config(tmp_path: Path) -> None:
    launcher = _instance_config("dagster-k8s.yaml", tmp_path)["run_launcher"]
    assert (launcher["module"], launcher["class"]) == ("dagster_k8s", "K8sRunLauncher")
    config = launcher["config"]
    assert set(config) <= K8S_RUN_LAUNCHER_FIELDS, set(config) - K8S_RUN_LAUNCHER_FIELDS
    assert config["instance_config_map"] and config["postgres_password_secret"]
    mounts = {mount["name"] for mount in config["volume_mounts"]}
    assert mounts <= {volume["name"] for volume in config["volumes"]}
    assert "EEMO_STORAGE=/data/eemo" in config["env_vars"]
    try:
        from dagster_k8s import K8sRunLauncher
    except ImportError:
        return
    from dagster._config import validate_config

    result = validate_config(K8sRunLauncher.config_type(), config)
    assert result.success, [error.message for error in result.errors]


def test_k8s_executor_run_config_gives_the_training_steps_gpus() -> None:
    from eemo_pipeline.definitions import defs

    config = _load(DEPLOY / "k8s" / "training-gpu-run-config.yaml")["execution"]["config"]
    assert set(config) <= K8S_EXECUTOR_FIELDS, set(config) - K8S_EXECUTOR_FIELDS
    per_step = config["per_step_k8s_config"]
    # Step keys are op names of the code location: a renamed asset would silently lose its GPUs.
    ops = {node.name for job in defs.resolve_all_job_defs() for node in job.graph.node_defs}
    assert set(TRAINING_ASSETS) <= set(per_step) <= ops, set(per_step) - ops
    for step, step_config in per_step.items():
        assert set(step_config) <= K8S_STEP_CONFIG_FIELDS
        limits = step_config["container_config"]["resources"]["limits"]
        assert int(limits["nvidia.com/gpu"]) >= 1, step
    try:
        from dagster_k8s.executor import _K8S_EXECUTOR_CONFIG_SCHEMA
    except ImportError:
        return
    from dagster._config import validate_config

    result = validate_config(_K8S_EXECUTOR_CONFIG_SCHEMA, config)
    assert result.success, [error.message for error in result.errors]


def test_pipes_training_pod_spec() -> None:
    spec = _load(DEPLOY / "k8s" / "pipes-training-pod.yaml")
    container = spec["containers"][0]
    assert int(container["resources"]["limits"]["nvidia.com/gpu"]) >= 1
    assert {mount["name"] for mount in container["volume_mounts"]} <= {volume["name"] for volume in spec["volumes"]}
    assert any(mount["mount_path"] == "/dev/shm" for mount in container["volume_mounts"])
    try:
        import kubernetes
        from dagster_k8s.models import k8s_model_from_dict
    except ImportError:
        return
    model = k8s_model_from_dict(kubernetes.client.V1PodSpec, spec)
    assert model.containers[0].resources.limits["nvidia.com/gpu"]


@pytest.mark.parametrize("name", ACCELERATE_FILES)
def test_accelerate_config_loads(name: str) -> None:
    pytest.importorskip("accelerate", reason="accelerate comes with the train extra")
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file

    # from_yaml_file rejects unknown keys and unknown enum values (distributed type, precision).
    config = load_config_from_file(str(DEPLOY / "accelerate" / name))
    assert isinstance(config, ClusterConfig)
    assert config.mixed_precision == "bf16"
    expected = {"single_gpu.yaml": ("NO", 1), "multi_gpu.yaml": ("MULTI_GPU", 4), "deepspeed_zero2.yaml": ("DEEPSPEED", 4),
                "fsdp.yaml": ("FSDP", 4)}
    assert (config.distributed_type.value, config.num_processes) == expected[name]
    if name == "deepspeed_zero2.yaml":
        assert config.deepspeed_config["zero_stage"] == 2


def test_fsdp_config_reaches_accelerates_fsdp_plugin() -> None:
    """The launcher turns deploy/accelerate/fsdp.yaml into its processes' FSDP settings (rejecting inconsistent
    ones), the plugin reads them back, and the layers it wraps are Qwen2.5-VL's own unsplittable blocks."""
    pytest.importorskip("accelerate", reason="accelerate comes with the train extra")
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils import FullyShardedDataParallelPlugin, patch_environment
    from accelerate.utils.launch import prepare_multi_gpu_env
    from transformers import Qwen2_5_VLForConditionalGeneration

    command = ["--config_file", str(DEPLOY / "accelerate" / "fsdp.yaml"), "-m", "eemo_pipeline.training.launch", "job.json"]
    args, _, _ = _validate_launch_command(launch_command_parser().parse_args(command))
    assert args.use_fsdp and args.num_processes == 4
    environment = {key: value for key, value in prepare_multi_gpu_env(args).items() if key.startswith(("FSDP_", "ACCELERATE_"))}
    assert environment["ACCELERATE_USE_FSDP"] == "true"
    with patch_environment(**environment):
        plugin = FullyShardedDataParallelPlugin()
    assert plugin.fsdp_version == 2 and plugin.cpu_ram_efficient_loading and plugin.reshard_after_forward
    assert set(plugin.transformer_cls_names_to_wrap) == set(Qwen2_5_VLForConditionalGeneration._no_split_modules)
    assert plugin.state_dict_type.name == "FULL_STATE_DICT"  # one checkpoint file set, loadable without FSDP


def test_deploy_doc_names_only_files_that_exist() -> None:
    text = (REPO / "docs" / "deploy.md").read_text()
    named = set(re.findall(r"(?<![\w/.-])((?:deploy|docs|eemo_pipeline|eemo_pipeline_tests|scripts)/[\w./-]+\.(?:ya?ml|md|py|sh))", text))
    assert {f"deploy/{name}" for name in INSTANCE_FILES} <= named
    assert {f"deploy/accelerate/{name}" for name in ACCELERATE_FILES} <= named
    missing = sorted(path for path in named if not (REPO / path).is_file())
    assert not missing, f"docs/deploy.md names files that do not exist: {missing}"
    # Every file in deploy/ is documented.
    shipped = {path.relative_to(REPO).as_posix() for path in DEPLOY.rglob("*.yaml")}
    assert shipped <= named, shipped - named
    for flag in ("--tensor-parallel-size", "--data-parallel-size"):
        assert flag in text


def test_managed_server_run_config_fits_the_code_location() -> None:
    import shlex

    from dagster import validate_run_config

    from eemo_pipeline.definitions import defs

    config = _load(DEPLOY / "managed-vllm-run-config.yaml")
    resolved = validate_run_config(defs.resolve_implicit_global_asset_job_def(), config)
    command = resolved["resources"]["describer_server"]["config"]["command"]
    # Run without a shell: the JSON arguments stay whole, {port} is the only placeholder.
    argv = shlex.split(command.replace("{port}", "8000"))
    assert argv[:2] == ["vllm", "serve"] and argv[argv.index("--port") + 1] == "8000"
    assert argv[argv.index("--limit-mm-per-prompt") + 1] == '{"image": 1}'
    assert "--api-key" not in argv  # keys come from the environment (VLLM_API_KEY), not the logged command line
