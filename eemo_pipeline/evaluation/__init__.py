"""Benchmarks for any model: readers, model adapters, the runner, the LLM judge and the report (answer
parsing, metrics and per-task scorers come from ``eemo_pipeline.tasks``)."""
