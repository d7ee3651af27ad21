"""The Configuration Manager as one flow: edit, Load Data, Test Access, validate, Publish.

``run(params)`` does what the old Configuration Manager's buttons did, in their order, and returns
a :class:`ConfigureResult` that renders itself, writes its artifacts and can build the ipywidgets
form. It sits above ``config`` (which must not reach a CRM or a mailbox) and below the notebook.
"""

from emailrouter_lib.configure.flow import ConfigureParams, ConfigureResult, run

__all__ = ["ConfigureParams", "ConfigureResult", "run"]
