"""The jobs of the code location, one per pipeline stage (plus Table 4's ablations), and the stages in the order
``eemo demo`` runs them."""

from dagster import AssetSelection, define_asset_job

from eemo_pipeline.assets.evaluation import benchmark_cross_domain, benchmark_eemo_bench, benchmark_report
from eemo_pipeline.assets.generation import descriptive_answers, emotion_reasoning, image_descriptions
from eemo_pipeline.assets.ingestion import image_manifest, raw_annotations
from eemo_pipeline.assets.labels import label_taxonomy, mapped_labels
from eemo_pipeline.assets.subsets import eemodb_assess, eemodb_qa, grpo_dataset, sft_dataset
from eemo_pipeline.assets.training import grpo_checkpoint, sft_checkpoint
from eemo_pipeline.assets.vad import vad_lexicon, vad_scores, vad_validation
from eemo_pipeline.automation import WRITES_TAG
from eemo_pipeline.training.presets import TABLE4_PRESETS

ingest_job = define_asset_job(
    "ingest_sources",
    selection=AssetSelection.assets(raw_annotations, image_manifest),
    description="Read every source's native files and inspect its images, one partition per source.",
)
reference_job = define_asset_job(
    "reference_tables",
    selection=AssetSelection.assets(label_taxonomy, vad_lexicon),
    tags={WRITES_TAG: "reference_tables"},
    description="Label taxonomy with the EMOTIC centroids, and the Warriner VAD lexicon (unpartitioned).",
)
refine_job = define_asset_job(
    "refine_sources",
    selection=AssetSelection.assets(mapped_labels, vad_scores, vad_validation),
    description="Mapped labels, rankings and 0-1 VAD for every source image, one partition per source.",
)
generate_job = define_asset_job(
    "generate_text",
    selection=AssetSelection.assets(image_descriptions, emotion_reasoning, descriptive_answers),
    description="Descriptions, reasoning and descriptive answers through the describer and reasoner endpoints.",
)
subsets_job = define_asset_job(
    "build_subsets",
    selection=AssetSelection.assets(eemodb_qa, eemodb_assess, sft_dataset, grpo_dataset),
    tags={WRITES_TAG: "subsets"},
    description="EEmoDB-QA and EEmoDB-Assess from every source, with their SFT and GRPO exports.",
)
train_job = define_asset_job(
    "train_models",
    selection=AssetSelection.assets(sft_checkpoint, grpo_checkpoint),
    tags={WRITES_TAG: "checkpoints"},
    description="Stage 1 LoRA SFT on EEmoDB-QA, then stage 2 GRPO on EEmoDB-Assess, out of process (pool gpu).",
)
# Table 4's ablations: their settings are the jobs' default run config, shown (and editable) in the launchpad.
ablation_jobs = [
    define_asset_job(preset.job, selection=AssetSelection.assets(*preset.assets), description=preset.description,
                     config=preset.run_config(), tags={WRITES_TAG: "checkpoints"})  # queued with train_models
    for preset in TABLE4_PRESETS
]
evaluate_job = define_asset_job(
    "evaluate_models",
    selection=AssetSelection.assets(benchmark_eemo_bench, benchmark_cross_domain, benchmark_report),
    tags={WRITES_TAG: "benchmarks"},
    description="The base model, both checkpoints (or the configured models) on EEmo-Bench and the cross-domain "
    "sets, then the report beside the paper's Tables 1-3.",
)

# Stages in dependency order, as `eemo demo` runs them: (job, partitioned per source).
PIPELINE_STAGES: tuple[tuple[str, bool], ...] = (
    ("ingest_sources", True),
    ("reference_tables", False),
    ("refine_sources", True),
    ("generate_text", True),
    ("build_subsets", False),
    ("train_models", False),
    ("evaluate_models", False),
)

JOBS = [ingest_job, reference_job, refine_job, generate_job, subsets_job, train_job, *ablation_jobs, evaluate_job]
