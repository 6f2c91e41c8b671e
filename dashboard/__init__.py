"""Streamlit glue shared by the dashboard's pages (app.py + pages/).

Pages only call ``bloodcell_core`` and draw; what several pages need from Streamlit --
the cached model and explainers, the model picker, the dataset picker, sign-in, the review
store, progress bars and Plotly figures -- lives here, so each page stays short.

- :mod:`dashboard.state`: cached loaders, sidebar model picker, sign-in gate, review store,
  progress bars, a small result cache for slow computations.
- :mod:`dashboard.datasets`: which datasets may be opened (only under
  ``bloodcell_core.paths.data_roots()``), and the dataset picker widget.
- :mod:`dashboard.charts`: Plotly figures (probabilities, confusion matrix, reliability, coverage).
- :mod:`dashboard.sign_in`: the reviewer sign-in widgets (rules: ``bloodcell_core.review.auth``);
  :mod:`dashboard.session_cookie`: the session cookie that keeps sign-in and batch across reloads.

Session-state keys used here start with ``app_``; each page prefixes its own keys with its
page name (``classify_*``, ``perf_*``, ...).
"""
