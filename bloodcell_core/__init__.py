"""bloodcell_core: everything the dashboard and the CLI do (data, training, inference,
explanations, audit, robustness, review store).  Pages and the CLI only call into it."""

__version__ = "0.1.0"
