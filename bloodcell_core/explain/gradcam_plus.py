"""Grad-CAM++ through :class:`tf_keras_vis.gradcam_plus_plus.GradcamPlusPlus`."""
from __future__ import annotations

from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus

from bloodcell_core.explain.gradcam import GradCAM


class GradCAMPlusPlus(GradCAM):
    """Grad-CAM with pixel-wise gradient weights; better when a class shows up in several
    places (e.g. several granules), at the same cost as Grad-CAM.  Built and called as Grad-CAM is."""

    name = "Grad-CAM++"
    visualizer_class = GradcamPlusPlus
