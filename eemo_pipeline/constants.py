"""Constants shared by several subpackages; this module imports nothing of the project, so any side may import it."""

# Qwen2.5-VL's training budget (paper and authors' scripts): 256 to 1280 patches of 28 x 28 pixels.
PATCH = 28
MIN_PIXELS = 256 * PATCH * PATCH
MAX_PIXELS = 1280 * PATCH * PATCH
