"""The explanation error, apart from the TensorFlow-heavy modules so light callers can catch it."""
from __future__ import annotations

from bloodcell_core.errors import BloodcellError


class ExplanationError(BloodcellError):
    """A model or input the saliency methods can't work with."""
