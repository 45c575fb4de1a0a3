"""What the generation asset tests share: the sample and a local endpoint in the environment, and the resources."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from eemo_pipeline.generation.offline_server.chat_api import DEFAULT_MODEL
from eemo_pipeline.resources import InputPathsResource, LLMEndpointResource, ParquetIOManager, StorageResource
from eemo_pipeline.settings import LEXICON_ENV, endpoint_variable, root_variable

GENERATION_ROLES = ("describer", "reasoner")


def point_generation_at(patch: pytest.MonkeyPatch, roots: Mapping[str, Path], lexicon: Path, base_url: str,
                        api_key: str) -> None:
    """Source roots, the lexicon and both generation roles' endpoint (the offline model, with its key) in the
    environment, as a user would set them."""
    for source, root in roots.items():
        patch.setenv(root_variable(source), str(root))
    patch.setenv(LEXICON_ENV, str(lexicon))
    for role in GENERATION_ROLES:
        patch.setenv(endpoint_variable(role, "base_url"), base_url)
        patch.setenv(endpoint_variable(role, "model"), DEFAULT_MODEL)
        patch.setenv(endpoint_variable(role, "api_key"), api_key)


def generation_resources(storage: Path) -> dict:
    """The resources of the ingestion-to-generation assets over one storage root."""
    store = StorageResource(root=str(storage))
    return {"io_manager": ParquetIOManager(storage=store), "storage": store, "input_paths": InputPathsResource(),
            **{role: LLMEndpointResource(role=role) for role in GENERATION_ROLES}}
