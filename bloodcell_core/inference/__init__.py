"""Serving: the Predictor (crop, classify, flag for review) and the predict command."""
