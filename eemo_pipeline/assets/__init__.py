"""Thin Dagster wrappers: each module wires config and resources to domain functions and records metadata.

This package is an edge: importing it reads the contracts folder from the settings (``EEMO_CONTRACTS``) and hands
it to ``eemo_pipeline.contracts``, before any asset module builds its partitions from the source declarations."""

from eemo_pipeline.contracts import use_contracts_dir
from eemo_pipeline.settings import Settings

use_contracts_dir(Settings.from_env().contracts_dir)
