"""Training: rewards, SFT and GRPO entry points, tiny offline models for tests and the demo."""
