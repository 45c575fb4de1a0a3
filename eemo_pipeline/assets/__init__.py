"""Thin Dagster wrappers: each module wires config and resources to domain functions and records metadata."""
