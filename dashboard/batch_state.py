"""The Classify page's batch, kept per session: what is uploaded (or kept from before a reload),
each upload decoded once, each cell's gallery thumbnail made once.

The batch itself is kept on disk for the session by :mod:`dashboard.session_cookie`;
the caches here live in ``st.session_state`` (page-prefixed keys) and are pruned by the page when
images leave the batch.
"""
from __future__ import annotations

import streamlit as st

from bloodcell_core.data.images import content_hash
from bloodcell_core.reporting.batch import ClassifiedImage
from bloodcell_core.reporting.gallery import crop_thumbnail, thumbnail_label
from bloodcell_core.reporting.uploads import DecodedUpload, decode_upload
from dashboard import session_cookie

UPLOADS_KEY = "classify_uploads"  # the uploader's widget key
THUMBNAILS_KEY = "classify_thumbnails"  # {(model key, image hash): data URI of the gallery thumbnail}
DECODED_KEY = "classify_decoded"  # {(content hash, file name): DecodedUpload}: each upload decoded once


def current_batch(files: list | None) -> tuple[list[tuple[str, bytes]], bool]:
    """(the batch's (name, bytes), whether it is the one kept from before a reload or a page switch).

    The uploader's files are the batch, and are kept for the session (see
    :mod:`dashboard.session_cookie`); an uploader that is empty because the page was
    reloaded or left shows the kept batch (an uploader the reviewer emptied has cleared it).
    """
    if files:
        batch = [(f.name, f.getvalue()) for f in files]
        session_cookie.keep_batch(batch)
        return batch, False
    kept = session_cookie.kept_batch()
    return kept, bool(kept)


def touch_session() -> None:
    """A run of the page's fragment is activity too (for the idle timeout)."""
    session_cookie.touch_session()


def uploads_changed() -> None:
    """The uploader's callback: the reviewer removing every file clears the kept batch too."""
    if not st.session_state.get(UPLOADS_KEY):
        session_cookie.clear_batch()


def show_kept_batch(count: int) -> None:
    left, right = st.columns([3, 1], vertical_alignment="center")
    left.info(f"Showing the batch of {count} image(s) kept from before the page was reloaded. "
              "Uploading files replaces it.", icon=":material/restore:")
    right.button("Clear batch", key="classify_clear_batch", icon=":material/delete:",
                 on_click=session_cookie.clear_batch)


def decoded_uploads(files: list[tuple[str, bytes]], max_bytes: int) -> list[DecodedUpload]:
    """Each (name, bytes) decoded once per session (a rerun only hashes the bytes again)."""
    previous: dict[tuple[str, str], DecodedUpload] = st.session_state.get(DECODED_KEY, {})
    keys = [(content_hash(data), name) for name, data in files]  # hashed once per rerun
    current = {key: previous.get(key) or decode_upload(key[1], data, max_bytes)
               for key, (_name, data) in zip(keys, files)}
    st.session_state[DECODED_KEY] = current
    return [current[key] for key in keys]


def thumbnails_for(uploads: list[DecodedUpload], images: list[ClassifiedImage], model_key: str) -> list[str]:
    """The gallery thumbnail (the model's crop, with its class and confidence) of every image, made once."""
    cache: dict[tuple[str, str], str] = st.session_state.setdefault(THUMBNAILS_KEY, {})
    for upload, image in zip(uploads, images):
        key = (model_key, upload.image_hash)
        if key not in cache:
            prediction = image.prediction
            cache[key] = crop_thumbnail(upload.image, prediction.crop_box,
                                       thumbnail_label(prediction.predicted, prediction.confidence))
    return [cache[(model_key, u.image_hash)] for u in uploads]
