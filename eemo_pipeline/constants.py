"""Constants shared by several subpackages; this module imports nothing of the project, so any side may import it."""

# Qwen2.5-VL's training budget (paper and authors' scripts): 256 to 1280 patches of 28 x 28 pixels.
PATCH = 28
MIN_PIXELS = 256 * PATCH * PATCH
MAX_PIXELS = 1280 * PATCH * PATCH

# Limits of one `eemo sql` query (eemo_pipeline.lineage.sql; the CLI's defaults): DuckDB's memory limit (queries
# cannot spill to disk) and the wall-clock time after which the query is interrupted.
QUERY_MEMORY_LIMIT = "2GB"
QUERY_TIMEOUT_S = 300.0
