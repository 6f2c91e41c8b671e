"""Model architectures and the on-disk model format (Keras file + model card JSON)."""
