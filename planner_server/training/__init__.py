"""The training worker: GRPO on the planner (and optionally the reasoner) around the serving loop."""
