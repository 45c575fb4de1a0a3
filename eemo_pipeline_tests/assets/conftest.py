"""What the generation asset tests share: the sample and a local endpoint in the environment, and the resources."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pytest
from dagster import AssetsDefinition, DagsterInstance, materialize

from eemo_pipeline.assets.ingestion import image_manifest, raw_annotations
from eemo_pipeline.assets.labels import label_taxonomy, mapped_labels
from eemo_pipeline.assets.vad import vad_lexicon, vad_scores
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


def materialize_generation_inputs(assets: Sequence[AssetsDefinition], sources: Iterable[str], labelled: str,
                                  resources: dict, instance: DagsterInstance) -> None:
    """What generation reads: raw annotations and manifests of ``sources``, the taxonomy and lexicon, and the
    labels and VAD of partition ``labelled``."""
    for source in sources:
        materialize(assets, selection=[raw_annotations, image_manifest], partition_key=source, resources=resources,
                    instance=instance)
    materialize(assets, selection=[label_taxonomy, vad_lexicon], resources=resources, instance=instance)
    materialize(assets, selection=[mapped_labels, vad_scores], partition_key=labelled, resources=resources,
                instance=instance)
