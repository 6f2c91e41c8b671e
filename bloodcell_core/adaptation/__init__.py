"""Adapt a trained model to one laboratory from a few of its reviewed cells (``adapt`` command)."""
