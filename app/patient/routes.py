"""Patient routes (built out by the questionnaire work)."""
