"""rsim planner server: picks the next reasoning strategy from a question and the reasoning so far."""
