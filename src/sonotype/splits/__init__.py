"""Group-aware splits (k-fold, leave-one-group-out, holdout) and the protocol names."""
