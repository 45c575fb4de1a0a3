"""Benchmarks for any model: readers, pure metrics, model adapters, the LLM judge and the report."""
