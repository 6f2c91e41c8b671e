"""What the dashboard's clinician pages compute, as plain functions (no Streamlit).

- :mod:`.uploads`: decode a batch of uploads, one clear message per bad file.
- :mod:`.batch`: classified images, the differential count, the predictions CSV.
- :mod:`.decisions`: accept/correct decisions for the review store, idempotent across reruns.
- :mod:`.summary`: the printable HTML summary of a batch (date, model, reviewer).
- :mod:`.images`: the crop box drawn on an upload; the explained crop.
- :mod:`.performance`: stratified samples, metric tables, misclassified images, model-card overview.
"""
