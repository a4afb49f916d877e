"""HTTP routes of the planner server."""
