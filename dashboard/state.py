"""Cached loaders and shared widgets: model picker, sign-in gate, review store, progress.

Everything slow is loaded once per process with ``st.cache_resource`` and keyed by what
makes it stale (a model folder's path *and* file modification times), so replacing a model
on disk is picked up without restarting the app.

Usage from a page (``require_view`` or ``sign_in`` first, once per run)::

    from dashboard import state
    access = state.require_view()          # sign-in widgets (sidebar); stops if not allowed
    predictor = state.current_predictor()  # the model picked in the sidebar, or None (error shown)
    if predictor is None:
        st.stop()
"""
from __future__ import annotations

import re
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import streamlit as st

from bloodcell_core.errors import BloodcellError, one_line
from bloodcell_core.inference.warmup import ModelWarmer
from bloodcell_core.explain import DEFAULT_METHOD, METHOD_NAMES
from bloodcell_core.models.card import ModelCard
from bloodcell_core.models.store import (
    CARD_FILE,
    MODEL_FILE,
    check_model_folder,
    list_models,
    read_card,
    resolve_model_dir,
)
from bloodcell_core.paths import default_model_dir
from bloodcell_core.progress import ProgressFn
from bloodcell_core.review import auth
from bloodcell_core.review.store import ReviewStore, default_database_url
from dashboard import sign_in as sign_in_widgets

if TYPE_CHECKING:  # TensorFlow-heavy: imported where first used, so the first page draws fast
    from bloodcell_core.explain.base import Explainer
    from bloodcell_core.inference.predictor import Predictor

MODEL_DIR_KEY = "app_model_dir"  # st.session_state: str path of the model picked in the sidebar
MODEL_PICKER_KEY = "app_model_picker"
T = TypeVar("T")


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:=^&])")


def md_escape(text: object) -> str:
    """``text`` with every Markdown / Streamlit-directive character backslash-escaped.

    For untrusted strings (file names, typed reviewer names) inside st.markdown, st.success,
    st.warning, ...: they render literally, never as links, images, colours, icons or LaTeX.
    """
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


# -- models ------------------------------------------------------------------------------------

def keep_keras_state_between_runs() -> None:
    """Stop Streamlit clearing the Keras session after every script run (idempotent; from app.py).

    Streamlit's script runner calls ``keras.backend.clear_session()`` when a run ends, for apps
    that build models in the script. Ours loads them once (:func:`load_predictor`), and the call
    costs each rerun (an upload, a review click) about 0.3 s here: a full ``gc.collect()`` over
    TensorFlow's heap, and an emptied kernel cache that the next prediction rebuilds. The other
    half of Streamlit's clean-up (closing matplotlib figures) is kept.
    """
    from streamlit.runtime.scriptrunner import script_runner

    if getattr(script_runner, "_clean_problem_modules", None) is not _close_matplotlib_figures:
        script_runner._clean_problem_modules = _close_matplotlib_figures


def _close_matplotlib_figures() -> None:
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        try:
            pyplot.close("all")
        except Exception:  # noqa: BLE001 (as Streamlit's own clean-up: never fail a run over it)
            pass


def model_key(model_dir: str | Path) -> str:
    """Path plus modification times of model.keras and card.json: changes when the model does."""
    path = Path(model_dir).resolve()
    stamps = []
    for name in (MODEL_FILE, CARD_FILE):
        try:
            stamps.append(str((path / name).stat().st_mtime_ns))
        except OSError:
            stamps.append("missing")
    return f"{path}|{'|'.join(stamps)}"


@st.cache_resource(show_spinner=False)
def model_warmer() -> ModelWarmer:
    """The process-wide :class:`ModelWarmer`."""
    return ModelWarmer()


def load_predictor(model_dir: str | Path | None = None) -> Predictor:
    """The Predictor for ``model_dir`` (None: the default model), loaded once; ModelLoadError if broken."""
    path = resolve_model_dir(model_dir)
    key, warmer = model_key(path), model_warmer()
    if warmer.status(key) == "ready":
        return warmer.predictor(key, str(path.resolve()))
    with st.spinner("Loading the model..."):  # or waiting for the background load already under way
        return warmer.predictor(key, str(path.resolve()))


def warm_model_in_background(model_dir: str | Path | None = None) -> None:
    """Start loading ``model_dir`` (default: the picked model) and its Grad-CAM in the background."""
    try:
        path = resolve_model_dir(model_dir if model_dir is not None else selected_model_dir())
    except BloodcellError:
        return  # the page that needs it shows the error
    model_warmer().warm_in_background(model_key(path), str(path.resolve()))


def model_status(model_dir: str | Path) -> str:
    """What the background load of ``model_dir`` has got to (see :meth:`ModelWarmer.status`)."""
    return model_warmer().status(model_key(model_dir))


def selected_card() -> tuple[Path, ModelCard]:
    """(folder, card) of the picked model without loading it; ModelLoadError if the folder is broken."""
    path = resolve_model_dir(selected_model_dir())
    return _checked_card(model_key(path), str(path))


@st.cache_data(max_entries=16, show_spinner=False)
def _checked_card(key: str, model_dir: str) -> tuple[Path, ModelCard]:  # noqa: ARG001 (key: the files' mtimes)
    """check_model_folder once per model version: it reads the ~1 MB card and CRC-checks model.keras.

    cache_data hands each caller its own copy, so a page that edits the card cannot change
    another's; errors are not cached, so a broken folder is checked again on the next run.
    """
    return check_model_folder(model_dir)


@st.cache_resource(max_entries=16, show_spinner="Preparing the explanation method...")
def _load_explainer(key: str, method: str, _predictor: Predictor) -> Explainer:  # noqa: ARG001
    from bloodcell_core.explain import get_explainer

    return get_explainer(_predictor.model, method)


def load_explainer(predictor: Predictor, model_dir: str | Path, method: str = DEFAULT_METHOD) -> Explainer:
    """The saliency explainer (one of ``METHOD_NAMES``) for a loaded model, built once per model and method."""
    if method not in METHOD_NAMES:
        raise BloodcellError(f"unknown explanation method {method!r}")
    return _load_explainer(model_key(model_dir), method, predictor)


def model_options() -> list[Path]:
    """The default model (``$BLOODCELL_MODEL`` or models/default) first, then every other found one."""
    options: list[Path] = []
    seen: set[Path] = set()
    for path in [default_model_dir(), *list_models()]:
        resolved = path.resolve()
        if resolved not in seen and (resolved / MODEL_FILE).exists():
            seen.add(resolved)
            options.append(resolved)
    return options


def model_label(model_dir: Path) -> str:
    """``card name (folder)`` for menus; a card that can't be read says so instead of failing."""
    try:
        name = str(read_card(model_dir).name or model_dir.name)
    except BloodcellError:
        return f"{model_dir.name} (unreadable model card)"
    return name if name == model_dir.name else f"{name} ({model_dir.name})"


def selected_model_dir() -> Path:
    """The model picked in the sidebar this session, else the default model folder."""
    chosen = st.session_state.get(MODEL_DIR_KEY)
    return Path(chosen) if chosen else default_model_dir().resolve()


def model_picker(container: Any = None) -> Path | None:
    """Sidebar selectbox of every model (models/, ``$BLOODCELL_MODELS_DIR``, the adapted models).

    Stores the choice as a string in ``st.session_state["app_model_dir"]`` and returns it.
    """
    where = container if container is not None else st.sidebar
    options = [str(p) for p in model_options()]
    if not options:
        where.error(f"No model found: put a model folder ({MODEL_FILE} + {CARD_FILE}) in models/ "
                    "or point $BLOODCELL_MODELS_DIR at a folder of models.")
        st.session_state.pop(MODEL_DIR_KEY, None)
        return None
    current = st.session_state.get(MODEL_DIR_KEY)
    if st.session_state.get(MODEL_PICKER_KEY) not in options:
        st.session_state[MODEL_PICKER_KEY] = current if current in options else options[0]
    choice = where.selectbox("Model", options, key=MODEL_PICKER_KEY,
                             format_func=lambda option: model_label(Path(option)),
                             help="Models found in models/, in $BLOODCELL_MODELS_DIR and those adapted here "
                                  "(the data folder's models/).")
    st.session_state[MODEL_DIR_KEY] = choice
    return Path(choice)


def select_model(model_dir: str | Path) -> None:
    """Make ``model_dir`` the picked model. A button callback (``on_click``): the picker's widget
    state can only be set before the sidebar draws it, i.e. before the next run."""
    chosen = str(Path(model_dir).resolve())
    st.session_state[MODEL_PICKER_KEY] = chosen
    st.session_state[MODEL_DIR_KEY] = chosen


def model_problem(error: BaseException | str, model_dir: str | Path | None = None) -> str:
    """One line saying why a model can't be loaded, naming its folder only, never the server path.

    Load errors name the file they failed on (``/srv/models/broken/model.keras: ...``); the
    people using the dashboard need the folder they picked (``broken/model.keras: ...``).
    """
    folder = Path(model_dir) if model_dir is not None else selected_model_dir()
    text = error if isinstance(error, str) else one_line(error)
    if not isinstance(error, (str, BloodcellError)):
        text = f"{type(error).__name__}: {text}"
    for server_path in sorted({str(folder), str(folder.resolve()), str(folder.absolute())}, key=len, reverse=True):
        text = text.replace(server_path, folder.name)
    return f"The model can't be loaded: {text}. Pick another model in the sidebar."


def current_predictor(show_error: bool = True) -> Predictor | None:
    """The picked model, loaded; None with a one-line ``st.error`` when it can't be loaded."""
    model_dir = selected_model_dir()
    try:
        return load_predictor(model_dir)
    except Exception as error:  # noqa: BLE001  (a broken file must not take the app down)
        if show_error:
            st.error(model_problem(error, model_dir))
        return None


def predictor_or_stop() -> Predictor:
    """:func:`current_predictor`, or ``st.stop()`` after the error was shown."""
    predictor = current_predictor()
    if predictor is None:
        st.stop()
    return predictor  # type: ignore[return-value]


# -- sign-in -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Access:
    """What the person using this session may do."""

    identity: auth.Identity | None
    may_view: bool
    reviewer: str | None  # the identity decisions are recorded under; None: may not record
    reason: str  # why ``reviewer`` is None ("" when it is set)


def _record_refusal(identity: auth.Identity | None) -> str:
    if identity is not None:
        return f"{identity.display_name} may view but not record decisions (role: {identity.role})."
    try:
        closed = auth.sign_in_mode(sign_in_widgets.app_secrets()) == "closed"
    except auth.AuthConfigError as error:
        return f"Sign-in is misconfigured: {error}"
    return auth.SIGN_IN_NOT_CONFIGURED if closed else "Sign in (sidebar) to record decisions."


SHELL_CHECKED_KEY = "app_shell_checked"


def ensure_app_shell() -> None:
    """Rerun through app.py when Streamlit ran this page file on its own.

    A ``pages/`` folder next to the entry script puts Streamlit in its legacy multipage mode
    until the first ``st.navigation`` call in the process: if a fresh server's first request is a
    page URL (``/classify``), Streamlit runs pages/classify.py alone -- no page config, no model
    picker, a file-name navigation.  ``st.navigation`` clears Streamlit's ``uses_pages_directory``
    flag; clearing it here and rerunning gives what app.py running first would have given.

    Checked on a session's first page run only: later runs of a real server never see the flag
    set again, while Streamlit's AppTest sets it before every run (and there a rerun would drop
    the clicks of the run that triggered it).
    """
    first_run = SHELL_CHECKED_KEY not in st.session_state
    st.session_state[SHELL_CHECKED_KEY] = True
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # a Streamlit without the legacy mode: nothing to do
        return
    if first_run and getattr(PagesManager, "uses_pages_directory", None):
        PagesManager.uses_pages_directory = False
        st.rerun()


def sign_in() -> Access:
    """Draw the sign-in widgets in the sidebar (once per run!) and say who may do what.

    Call it first on every page (directly or through :func:`require_view`): it also makes sure
    the page runs inside app.py's navigation (:func:`ensure_app_shell`).
    """
    ensure_app_shell()
    identity = sign_in_widgets.sign_in_form("sidebar")
    try:
        may_view = identity is not None or sign_in_widgets.read_only_allowed()
    except auth.AuthConfigError:
        may_view = False  # sign_in_form has shown the configuration error
    if identity is not None and identity.may_record:
        return Access(identity, True, identity.name, "")
    return Access(identity, may_view, None, _record_refusal(identity))


def require_view() -> Access:
    """:func:`sign_in`, then ``st.stop()`` with a message when this session may not view pages."""
    access = sign_in()
    if not access.may_view:
        st.info("Sign in (sidebar) to view this page.")
        st.stop()
    return access


LAB_SOURCE_KEY = "classify_lab_source"  # the laboratory/source name reviewed cells are archived under


def lab_source_input(container: Any = None) -> str | None:
    """The "Laboratory / source" text input (sidebar), set once per session; the cleaned name or None."""
    where = container if container is not None else st.sidebar
    where.text_input("Laboratory / source", key=LAB_SOURCE_KEY, max_chars=64,
                     placeholder="e.g. St Mary's haematology",
                     help="Cells you accept or correct are archived under this name, to adapt the model "
                          "to this laboratory (page 'Adapt to your lab'). Set it once per session.")
    return lab_source()


def lab_source() -> str | None:
    """The laboratory/source name set in this session (also readable inside button callbacks)."""
    from bloodcell_core.review.archive import normalise_source

    return normalise_source(st.session_state.get(LAB_SOURCE_KEY))


# -- review store ----------------------------------------------------------------------------------

@st.cache_resource(show_spinner=False)
def _open_store(url: str) -> ReviewStore:
    return ReviewStore(url)


def review_store() -> ReviewStore:
    """The review store at ``$BLOODCELL_DB_URL`` / ``$BLOODCELL_DB`` / data_dir(), opened once per URL.

    Raises ReviewStoreError (a BloodcellError) when the database can't be opened.
    """
    return _open_store(default_database_url().render_as_string(hide_password=False))


# -- progress and slow results -------------------------------------------------------------------

@contextmanager
def progress_bar(text: str, container: Any = None) -> Iterator[ProgressFn]:
    """An ``st.progress`` bar as a core ProgressFn; removed when the block ends."""
    where = container if container is not None else st
    bar = where.progress(0.0, text=text)

    def update(done: int, total: int, label: str) -> None:
        bar.progress(min(1.0, done / total) if total else 1.0, text=f"{label}: {done:,} / {total:,}")

    try:
        yield update
    finally:
        bar.empty()


class ResultCache:
    """A bounded, thread-safe key -> result map for slow computations with a progress bar.

    ``st.cache_data`` would replay the progress bar drawn inside the cached function; this
    cache computes outside any Streamlit cache, so progress shows once, while computing.
    """

    def __init__(self, max_entries: int) -> None:
        self._entries: OrderedDict[Any, Any] = OrderedDict()
        self._max_entries = max_entries
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any | None:
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        return None

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)

    def get_or_compute(self, key: Any, compute: Callable[[], T]) -> T:
        cached = self.get(key)
        if cached is None:
            cached = compute()
            self.put(key, cached)
        return cached

    def __contains__(self, key: Any) -> bool:
        with self._lock:
            return key in self._entries


@st.cache_resource(show_spinner=False)
def result_cache(name: str, max_entries: int = 8) -> ResultCache:
    """The process-wide ResultCache called ``name`` (one per page or computation kind)."""
    return ResultCache(max_entries)
