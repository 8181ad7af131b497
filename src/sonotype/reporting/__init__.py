"""Reports of finished runs and predictions: HTML, plots, result tables, run objects."""
