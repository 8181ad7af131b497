"""Floor utilities that every layer may use: validation, seeds, atomic files, threads, progress."""
