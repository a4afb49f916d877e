"""`rsim eval`: datasets × methods against a reasoner through the serving loop, with reports."""
