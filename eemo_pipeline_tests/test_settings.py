"""Settings read from a given mapping, the variable names built in one place, the environment read nowhere else,
and resource run config that steers a run without touching the environment."""

from __future__ import annotations

import ast
from pathlib import Path

import polars as pl
import pytest

from eemo_pipeline.settings import (
    DEFAULT_DAGSTER_HOME,
    DEFAULT_STORAGE,
    PACKAGED_CONTRACTS,
    EndpointSettings,
    Settings,
    endpoint_variable,
    root_variable,
)

PACKAGE = Path(__file__).resolve().parents[1] / "eemo_pipeline"
# Entry points that may read the environment besides settings.py (module -> its functions that may), and why.
ENVIRONMENT_READERS = {
    # The trainer's entry point: RANK and WORLD_SIZE (set per process by accelerate) and the crash tests' fault
    # injection; the training code gets them as arguments.
    "training/launch.py": {"main"},
    # TQDM_DISABLE: the demo terminal's display preference for third-party progress bars (tqdm reads nothing else).
    "demo.py": {"_run_demo"},
}


def test_from_env_reads_a_given_mapping(tmp_path: Path) -> None:
    environ = {
        "EEMO_STORAGE": str(tmp_path / "out"), "DAGSTER_HOME": str(tmp_path / "home"),
        "EEMO_EMOTION6_ROOT": "/data/Emotion6", "EEMO_EEMO_BENCH_ROOT": "/data/EEmo-Bench",
        "EEMO_DESCRIBER_BASE_URL": "http://127.0.0.1:8000/v1", "EEMO_DESCRIBER_MODEL": "qwen",
        "EEMO_JUDGE_MODEL": "judge-model", "EEMO_JUDGE_API_KEY": "sk-secret-value",
        "EEMO_BASE_MODEL": "/models/qwen2.5-vl", "EEMO_VAD_LEXICON": "/data/warriner.csv",
        "EEMO_CONTRACTS": "/contracts", "EEMO_AESBENCH_ANSWER_KEY": "/data/key.json",
        "EEMO_OASIS_ROOT": "",  # empty counts as unset
        "HOME": "/home/someone",
    }
    settings = Settings.from_env(environ)
    assert settings.storage == tmp_path / "out" and settings.dagster_home == tmp_path / "home"
    assert settings.roots == {"emotion6": Path("/data/Emotion6"), "eemo_bench": Path("/data/EEmo-Bench")}
    assert settings.root("emotion6") == Path("/data/Emotion6") and settings.root("oasis") is None
    assert settings.endpoint("describer") == EndpointSettings.for_role("describer", base_url="http://127.0.0.1:8000/v1",
                                                                        model="qwen")
    assert settings.endpoint("judge") == EndpointSettings.for_role("judge", model="judge-model")
    assert settings.endpoint("reasoner") == EndpointSettings.for_role("reasoner")
    # The role's sampling defaults come with it (the describer writes factual descriptions at a low temperature).
    assert (settings.endpoint("describer").temperature, settings.endpoint("describer").max_tokens) == (0.2, 256)
    assert set(settings.endpoints) == {"describer", "judge"}  # EEMO_BASE_MODEL is no endpoint of a role "base"
    assert settings.endpoint("judge").key_variable == "EEMO_JUDGE_API_KEY"
    assert settings.base_model == Path("/models/qwen2.5-vl") and settings.lexicon == Path("/data/warriner.csv")
    assert settings.contracts_dir == Path("/contracts") and settings.aesbench_answer_key == Path("/data/key.json")
    # A key's value is read only where a client is built: never part of the settings or what they pass on.
    assert "sk-secret-value" not in repr(settings) and "sk-secret-value" not in str(settings.environment())
    assert Settings.from_env(settings.environment()) == settings


def test_defaults_when_nothing_is_set() -> None:
    settings = Settings.from_env({})
    assert settings.storage == DEFAULT_STORAGE.resolve() and settings.dagster_home == DEFAULT_DAGSTER_HOME.resolve()
    assert settings.roots == {} and settings.endpoints == {}
    assert settings.base_model is settings.lexicon is settings.aesbench_answer_key is None
    assert settings.contracts_dir == PACKAGED_CONTRACTS and (PACKAGED_CONTRACTS / "sources.yaml").is_file()


def test_variable_names_are_built_in_one_place() -> None:
    assert root_variable("emotion6") == "EEMO_EMOTION6_ROOT" and root_variable("eemo_bench") == "EEMO_EEMO_BENCH_ROOT"
    assert [endpoint_variable("reasoner", item) for item in ("base_url", "model", "api_key")] == [
        "EEMO_REASONER_BASE_URL", "EEMO_REASONER_MODEL", "EEMO_REASONER_API_KEY"]
    with pytest.raises(ValueError, match="unknown endpoint item"):
        endpoint_variable("reasoner", "key")
    built = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "settings.py" and path.parent == PACKAGE:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant) \
                    and str(node.values[0].value).startswith("EEMO_"):
                built.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert built == [], "build EEMO_* names with eemo_pipeline.settings (root_variable, endpoint_variable)"


def _environment_access(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "os" \
                and node.attr in {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}:
            lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "os" \
                and {alias.name for alias in node.names} & {"environ", "environb", "getenv", "putenv", "unsetenv"}:
            lines.append(node.lineno)
    return sorted(lines)


def _outside(tree: ast.AST, functions: set[str], lines: list[int]) -> list[int]:
    """``lines`` that lie outside the top-level functions named ``functions``."""
    inside = {line for node in ast.iter_child_nodes(tree)
              if isinstance(node, ast.FunctionDef) and node.name in functions
              for line in range(node.lineno, (node.end_lineno or node.lineno) + 1)}
    return [line for line in lines if line not in inside]


def test_no_module_but_settings_touches_the_environment() -> None:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = path.relative_to(PACKAGE).as_posix()
        if name != "settings.py":
            tree = ast.parse(path.read_text(encoding="utf-8"))
            if lines := _outside(tree, ENVIRONMENT_READERS.get(name, set()), _environment_access(tree)):
                found[name] = lines
    assert found == {}, "read the environment through eemo_pipeline.settings.Settings.from_env"
    source = "import os\nos.environ.get('X')\nfrom os import getenv\ndef main():\n    return os.environ['Y']\n"
    assert _environment_access(ast.parse(source)) == [2, 3, 5]
    assert _outside(ast.parse(source), {"main"}, [2, 3, 5]) == [2, 3]


# Domain modules that still read the settings themselves, and why (the edges should hand them over).
# Functions of the domain packages that are edges: the trainer's entry point runs in its own process, where the
# run's settings arrive as its environment.
SETTINGS_READERS_IN_DOMAIN = {"training/launch.py": {"main"}}


def test_domain_packages_take_their_settings_as_arguments() -> None:
    from eemo_pipeline_tests.test_imports import DOMAIN

    found = []
    for unit in DOMAIN:
        for path in sorted((PACKAGE / unit).rglob("*.py")):
            name = path.relative_to(PACKAGE).as_posix()
            tree = ast.parse(path.read_text(encoding="utf-8"))
            calls = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr == "from_env"]
            if outside := _outside(tree, SETTINGS_READERS_IN_DOMAIN.get(name, set()), calls):
                found.append(f"{name}:{outside}")
    assert found == [], "read Settings.from_env() at an edge (resources, CLI) and pass the settings down"


def test_input_paths_resource_puts_its_fields_over_the_environment(tmp_path: Path, monkeypatch) -> None:
    from eemo_pipeline.resources import InputPathsResource

    monkeypatch.setenv(root_variable("gaped"), str(tmp_path / "env-gaped"))
    monkeypatch.setenv(root_variable("oasis"), str(tmp_path / "env-oasis"))
    monkeypatch.setenv("EEMO_VAD_LEXICON", str(tmp_path / "env.csv"))
    monkeypatch.delenv("EEMO_BASE_MODEL", raising=False)
    resource = InputPathsResource(roots={"oasis": str(tmp_path / "oasis")}, base_model=str(tmp_path / "model"))
    settings = resource.settings()
    assert settings.roots["gaped"] == tmp_path / "env-gaped" and settings.roots["oasis"] == tmp_path / "oasis"
    assert settings.lexicon == tmp_path / "env.csv" and settings.base_model == tmp_path / "model"
    assert InputPathsResource().settings() == Settings.from_env()


def test_resource_config_steers_a_run_without_the_environment(tmp_path: Path, monkeypatch) -> None:
    """What `eemo demo` does: settings handed to the run as run config, none of them in the environment."""
    from dagster import DagsterInstance

    from eemo_pipeline.definitions import defs
    from eemo_pipeline.resources import resource_config
    from eemo_pipeline.sample import write_sample

    root = write_sample(tmp_path / "sample", ["emotion6"])["emotion6"]
    monkeypatch.delenv(root_variable("emotion6"), raising=False)
    monkeypatch.setenv("EEMO_STORAGE", str(tmp_path / "elsewhere"))
    from eemo_pipeline.resources import LLMEndpointResource

    judge = EndpointSettings.for_role("judge", base_url="http://127.0.0.1:9/v1", model="judge-model", max_retries=2)
    settings = Settings(storage=tmp_path / "storage", roots={"emotion6": root}, endpoints={"judge": judge})
    config = resource_config(settings)
    assert config["resources"]["input_paths"]["config"]["roots"] == {"emotion6": str(root)}
    # One endpoint type handed down: the resource that the run config sets builds the very endpoint of the
    # settings, whatever the environment says.
    monkeypatch.setenv("EEMO_JUDGE_BASE_URL", "http://127.0.0.1:1/v1")
    monkeypatch.setenv("EEMO_JUDGE_MODEL", "from-the-environment")
    for role in ("describer", "reasoner", "judge"):
        given = config["resources"][role]["config"]
        assert given == settings.endpoint(role).public() and "api_key" not in given
    assert LLMEndpointResource(**config["resources"]["judge"]["config"]).endpoint() == judge
    result = defs.resolve_job_def("ingest_sources").execute_in_process(
        run_config=config, partition_key="emotion6", instance=DagsterInstance.ephemeral())
    assert result.success
    # The IO manager and the quarantine writer share the one storage root of the settings.
    assert pl.read_parquet(tmp_path / "storage" / "raw_annotations" / "emotion6.parquet").height > 0
    assert (tmp_path / "storage" / "quarantine" / "raw_annotations" / "emotion6.parquet").is_file()
    assert not (tmp_path / "elsewhere").exists()
