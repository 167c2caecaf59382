"""Console routes (built out by the console work)."""
