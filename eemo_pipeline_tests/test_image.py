"""The deployment image without a container runtime (none here, nor the base image): the Dockerfile copies only
files that exist and are not ignored, its wheel stage runs as written on those files, the wheel carries the data
contracts and the instance defaults, and the installed wheel loads both code locations from outside the
repository with no EEMO_CONTRACTS; the Helm values agree with deploy/dagster-k8s.yaml and the image."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """The Dockerfile as (instruction, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(line for line in DOCKERFILE.read_text().splitlines()
                                          if not line.lstrip().startswith("#")))
    return [(parts[0].upper(), parts[1] if len(parts) > 1 else "")
            for line in text.splitlines() if line.strip() for parts in [line.strip().split(None, 1)]]


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction, arguments in _instructions():
        if instruction == "FROM":
            stages.append([])
        elif stages:
            stages[-1].append((instruction, arguments))
    return stages


def _copies(stage: list[tuple[str, str]]) -> list[tuple[list[str], str]]:
    """The stage's COPY instructions from the build context: (sources, destination)."""
    copies = []
    for instruction, arguments in stage:
        if instruction == "COPY" and not arguments.startswith("--from"):
            *sources, destination = shlex.split(arguments)
            copies.append((sources, destination))
    return copies


def _ignored(path: str) -> bool:
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    return any(fnmatch.fnmatch(path.rstrip("/") + "/", pattern) or fnmatch.fnmatch(path, pattern.rstrip("/"))
               for pattern in patterns)


def test_the_dockerfile_copies_what_exists_and_runs_the_cluster_code_location() -> None:
    stages = _stages()
    assert len(stages) == 2
    sources = [source for stage in stages for copied, _ in _copies(stage) for source in copied]
    assert sources and all((REPO / source).exists() and not _ignored(source) for source in sources), sources
    # Every file the package links to is copied beside it in the wheel stage.
    wheel_sources = {source.rstrip("/") for copied, _ in _copies(stages[0]) for source in copied}
    links = [path for path in (REPO / "eemo_pipeline").iterdir() if path.is_symlink()]
    assert links and {os.path.normpath(os.readlink(path)).removeprefix("../") for path in links} <= wheel_sources
    [cmd] = [json.loads(arguments) for instruction, arguments in stages[1] if instruction == "CMD"]
    assert cmd[:3] == ["dagster", "api", "grpc"] and cmd[cmd.index("--module-name") + 1] == "eemo_pipeline.k8s_definitions"
    runtime = " ".join(arguments for instruction, arguments in stages[1] if instruction == "RUN")
    # The extras it installs exist, and bring dagster-k8s and dagster-postgres at the releases the tests ran with.
    extras = re.search(r"eemo_pipeline-\*\.whl\)\[([\w,]+)\]", runtime).group(1).split(",")
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(extras) <= set(declared), extras
    wanted = " ".join(requirement for extra in extras for requirement in declared[extra])
    for package in ("dagster_k8s", "dagster_postgres"):
        module = pytest.importorskip(package)
        assert f"{package.replace('_', '-')}=={module.__version__}" in wanted, package
    assert ("WORKDIR", "/opt/eemo") in stages[1] and ["deploy/"] in [copied for copied, _ in _copies(stages[1])]


def _snake(name: str) -> str:
    return re.sub(r"([A-Z])", lambda match: "_" + match.group(1).lower(), name)


def _snake_keys(value: Any) -> Any:
    """The Helm chart's camelCase keys as the instance YAML spells them (Kubernetes' own fields included)."""
    if isinstance(value, dict):
        return {_snake(key) if not key.startswith(("nvidia.com/", "app.kubernetes.io/")) else key: _snake_keys(item)
                for key, item in value.items()}
    return [_snake_keys(item) for item in value] if isinstance(value, list) else value


def test_the_helm_values_agree_with_the_instance_and_the_image() -> None:
    values = yaml.safe_load((REPO / "deploy" / "k8s" / "helm-values.yaml").read_text())
    launcher = yaml.safe_load((REPO / "deploy" / "dagster-k8s.yaml").read_text())["run_launcher"]["config"]
    chart = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    for key in ("imagePullPolicy", "volumeMounts", "volumes", "resources", "labels"):
        assert _snake_keys(chart[key]) == launcher[_snake(key)], key
    # The chart writes the Postgres host, user and database into the instance it renders: no DAGSTER_PG_* to pass on.
    assert chart["envVars"] == [name for name in launcher["env_vars"] if not name.startswith("DAGSTER_PG_")]
    assert {values["postgresql"][key] for key in ("postgresqlUsername", "postgresqlDatabase")} == {"dagster"}
    instance = yaml.safe_load((REPO / "deploy" / "dagster-k8s.yaml").read_text())["storage"]["postgres"]["postgres_db"]
    assert values["postgresql"]["postgresqlScheme"] == instance["scheme"]  # the chart's `scheme` in its instance
    assert [secret["name"] for secret in chart["envSecrets"]] == launcher["env_secrets"]
    assert values["global"]["postgresqlSecretName"] == launcher["postgres_password_secret"]
    assert values["global"]["serviceAccountName"] == launcher["service_account_name"]
    assert values["global"]["dagsterHome"] == launcher["dagster_home"]
    [deployment] = values["dagster-user-deployments"]["deployments"]
    args = deployment["dagsterApiGrpcArgs"]
    assert args[args.index("--module-name") + 1] == "eemo_pipeline.k8s_definitions"
    assert deployment["volumeMounts"] == chart["volumeMounts"] and deployment["volumes"] == chart["volumes"]
    # Every run-launcher key of the chart is a K8sRunLauncher setting.
    dagster_k8s = pytest.importorskip("dagster_k8s")
    assert {_snake(key) for key in chart} <= set(dagster_k8s.K8sRunLauncher.config_type())


def _has_build_backend() -> bool:
    """Whether this environment's setuptools builds wheels by itself (70 and later have bdist_wheel built in)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return int(version("setuptools").split(".")[0]) >= 70
    except (PackageNotFoundError, ValueError):
        return False


def _run_stage_commands(stage: list[tuple[str, str]], context: Path) -> None:
    """The wheel stage on this machine: its COPY sources into ``context`` (its WORKDIR), then its RUN line with the
    image's paths mapped into ``context``. Built with this environment's setuptools when it can (an isolated build,
    as in the image, fetches the build backend from the package index)."""
    context.mkdir(parents=True)
    for sources, destination in _copies(stage):
        for source in sources:
            if (REPO / source).is_dir():  # COPY dir/ dir/
                shutil.copytree(REPO / source, context / destination, symlinks=True,
                                ignore=shutil.ignore_patterns("__pycache__"))
            else:  # COPY file ... ./
                shutil.copy2(REPO / source, context / destination / source)
    [run] = [arguments for instruction, arguments in stage if instruction == "RUN"]
    command = shlex.split(run.replace("/wheels", str(context / "wheels")))
    assert command[:2] == ["pip", "wheel"]
    isolation = ["--no-build-isolation"] if _has_build_backend() else []
    subprocess.run([sys.executable, "-m", *command, *isolation, "--quiet"], cwd=context, check=True,
                   stdout=subprocess.DEVNULL)


@pytest.mark.slow
def test_the_installed_wheel_loads_both_code_locations_without_the_repository(tmp_path: Path) -> None:
    _run_stage_commands(_stages()[0], tmp_path / "src")
    [wheel] = (tmp_path / "src" / "wheels").glob("eemo_pipeline-*.whl")
    # A fresh environment with only the wheel; the dependencies come from this environment's site-packages. Nothing
    # of the repository on the path (PYTHONPATH), no contracts folder named (EEMO_CONTRACTS).
    environment = {name: value for name, value in os.environ.items() if name != "PYTHONPATH" and not name.startswith("EEMO_")}
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--quiet", str(wheel)],
                   check=True, env=environment)
    # Added after the install: pip would otherwise take this environment's editable install for the wheel's.
    (site / "shared.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # The image's working directory: deploy/ and workspace.yaml, no package sources.
    workdir = tmp_path / "opt-eemo"
    shutil.copytree(REPO / "deploy", workdir / "deploy")
    shutil.copy2(REPO / "workspace.yaml", workdir)
    probe = """
import json, sys, time
started = time.perf_counter()
import eemo_pipeline.definitions
load_s = time.perf_counter() - started
import eemo_pipeline, eemo_pipeline.k8s_definitions as cluster
from eemo_pipeline.contracts import contracts_dir, source_declarations
from eemo_pipeline.instance import ensure_dagster_home
home = ensure_dagster_home("home")
launcher = cluster.defs.resources["training_launcher"]
print(json.dumps({"package": eemo_pipeline.__file__, "contracts": str(contracts_dir()), "sources": len(source_declarations()),
                  "instance": (home / "dagster.yaml").read_text(), "load_s": load_s, "pod_spec": launcher.pod_spec,
                  "jobs": sorted(job.name for job in cluster.defs.resolve_all_job_defs())}))
"""
    completed = subprocess.run([python, "-W", "ignore", "-c", probe], cwd=workdir, env=environment, capture_output=True,
                               text=True)
    assert completed.returncode == 0, completed.stderr[-3000:]
    found = json.loads(completed.stdout.splitlines()[-1])
    assert found["package"].startswith(str(site)) and found["contracts"] == str(site / "eemo_pipeline" / "data_contracts")
    assert found["sources"] == 7 and "max_concurrent_runs" in found["instance"]
    assert (workdir / found["pod_spec"]).is_file() and "train_models" in found["jobs"]
    print(f"code location load from the wheel: {found['load_s']:.2f} s")
