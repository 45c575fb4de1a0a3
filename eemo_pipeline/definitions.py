"""The Dagster code location: assembles the assets, jobs, schedules, sensors and resources. Imports nothing heavy
(loads in < 3 s).

The resources (``eemo_pipeline.resources``) take what they leave empty from the settings when a run uses them;
``resource_config(settings)`` there is the run config that hands them a ``Settings`` instead (``eemo demo``).
"""

from dagster import Definitions

from eemo_pipeline.assets.evaluation import benchmark_cross_domain, benchmark_eemo_bench, benchmark_report
from eemo_pipeline.assets.generation import descriptive_answers, emotion_reasoning, image_descriptions
from eemo_pipeline.assets.ingestion import image_manifest, raw_annotations
from eemo_pipeline.assets.labels import label_taxonomy, mapped_labels
from eemo_pipeline.assets.sources import source_files
from eemo_pipeline.assets.subsets import eemodb_assess, eemodb_qa, grpo_dataset, sft_dataset
from eemo_pipeline.assets.training import grpo_checkpoint, sft_checkpoint
from eemo_pipeline.assets.vad import vad_lexicon, vad_scores, vad_validation
from eemo_pipeline.automation import observe_sources_daily, observe_sources_job, source_changes_sensor
from eemo_pipeline.jobs import JOBS
from eemo_pipeline.resources import default_resources

defs = Definitions(
    assets=[source_files, raw_annotations, image_manifest, label_taxonomy, mapped_labels, vad_lexicon, vad_scores,
            vad_validation, image_descriptions, emotion_reasoning, descriptive_answers, eemodb_qa, eemodb_assess,
            sft_dataset, grpo_dataset, sft_checkpoint, grpo_checkpoint, benchmark_eemo_bench, benchmark_cross_domain,
            benchmark_report],
    jobs=[*JOBS, observe_sources_job],
    schedules=[observe_sources_daily],
    sensors=[source_changes_sensor],
    resources=default_resources(),
)
