"""The GRPO/Assess tasks in one place: the registry (``registry.py``) and the pure per-task pieces that
subsets, training and evaluation share (question templates, answer parsing, rewards, benchmark metrics).

Subsets, training and evaluation import this package, never each other.
"""
