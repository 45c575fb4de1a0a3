"""The GRPO/Assess tasks: one module per task (``ranking.py``, ``vad.py``, ``dominant_emotion.py``), each exporting
its ``Task`` (``task.py``) as ``TASK``; the registry (``registry.py``) that lists them; and what the task modules
share with subsets, training and evaluation (answer parsing, metrics, similarity matrices, the Assess row inputs,
the benchmark's asks and metrics table, the TRL reward signature).

Subsets, training and evaluation import this package, never each other.
"""
