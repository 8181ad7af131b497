"""Training loops, ensemble members and augmentation over item arrays."""
