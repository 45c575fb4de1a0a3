"""The partitions of the per-source assets: one static partition per declared source data set."""

from dagster import StaticPartitionsDefinition

from eemo_pipeline.sources.base import SOURCES

source_partitions = StaticPartitionsDefinition(list(SOURCES))
