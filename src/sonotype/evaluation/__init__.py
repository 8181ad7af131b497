"""Pure metrics: scores, clip votes, fold aggregation, bootstrap intervals, label maps."""
