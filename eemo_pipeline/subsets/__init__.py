"""Training subsets built from the refined labels: EEmoDB-QA and EEmoDB-Assess, and their exports."""
