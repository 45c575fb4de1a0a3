"""EEmo-Logic rebuilt as a Dagster data-and-training pipeline."""

__version__ = "0.1.0"
