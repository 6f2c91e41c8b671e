"""Training: data preparation, grouped split, augmentation, the train command."""
