"""The Configuration Manager as one flow: edit, Load Data, Test Access, validate, Publish.

``run(params)`` does what the old Configuration Manager's buttons did, in their order, and returns
a :class:`ConfigureResult` that renders itself, writes its artifacts and can build the ipywidgets
form. It sits above ``config`` (which must not reach a CRM or a mailbox) and below the notebook.
"""

from emailrouter_lib.lazy_exports import lazy_exports

# Imported on first use (start-up time: emailrouter_lib.lazy_exports says why); the command's
# ``emailrouter config …`` group is configure/cli.py, which imports the flow only when it runs.
__all__, __getattr__, __dir__ = lazy_exports(
    globals(), {"flow": ("ConfigureParams", "ConfigureResult", "run")}
)
