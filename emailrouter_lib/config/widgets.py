"""ipywidgets forms for the Configuration Manager, for a person working in JupyterLab.

Imported only when a notebook is interactive (never under papermill). The form edits the same
:class:`~emailrouter_lib.config.edit.ConfigEditor` the notebook's cells use, pre-filled from the
notebook's parameters, and its buttons call the same library functions: Load Data and Publish
show a plan first; "Publish" writes only after "Show diff" has shown what would change.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import ipywidgets as w
from IPython.display import display

from emailrouter_lib.config.edit import PROFILE_FIELDS, ConfigEditor, Deployment, Profile
from emailrouter_lib.config.publish import PublishPlan, apply_publish, plan_publish

_LABELS = {
    "email_server_type": "Server type",
    "email_server_url": "Location",
    "email_auth_mode": "Authentication",
    "email_access_credentials": "Access credentials",
    "email_user": "User (Other specified)",
    "access_type": "Access type",
    "user_type": "User type",
}
_LAYOUT = w.Layout(width="460px")
_STYLE = {"description_width": "150px"}


class ConfigForm:
    """Three tabs like the Configuration Manager's, plus Load Data, Test Access and Publish.

    *load_data* and *test_access* are callables the notebook passes in (they need a CRM and
    mailbox access, which this configuration module does not import); each returns something
    that renders itself.
    """

    def __init__(
        self,
        editor: ConfigEditor,
        *,
        publish_to: str | Path | None = None,
        forward_mailbox: Mapping[str, Any] | None = None,
        load_data: Callable[[], Any] | None = None,
        test_access: Callable[[], Any] | None = None,
    ):
        self.editor = editor
        self.publish_to = Path(publish_to) if publish_to else editor.config.path
        self.plan: PublishPlan | None = None
        self.output = w.Output(layout=w.Layout(border="1px solid #ccc", padding="4px"))
        self._load_data, self._test_access = load_data, test_access

        self.profile_picker = w.Dropdown(description="Profile", style=_STYLE, layout=_LAYOUT)
        self.profile_name = _text("Profile name")
        self.direction = w.ToggleButtons(options=["incoming", "outgoing"], description="Direction")
        self.kind = w.Dropdown(options=["exchange", "pop3", "smtp"], description="Server kind")
        self.profile_fields = {attr: _text(_LABELS.get(attr, attr)) for attr in PROFILE_FIELDS}
        self.profile_fields["use_ssl"] = w.Checkbox(description="Use SSL", value=True)
        self.save_profile = w.Button(description="Save profile", button_style="primary")

        self.deployment_picker = w.Dropdown(description="Deployment", style=_STYLE, layout=_LAYOUT)
        self.default_incoming = w.Dropdown(description="Default incoming", style=_STYLE)
        self.default_outgoing = w.Dropdown(description="Default outgoing", style=_STYLE)
        self.save_deployment = w.Button(description="Save deployment", button_style="primary")

        fm = dict(forward_mailbox or {})
        self.forward_name = _text("Forward mailbox name", fm.get("name", ""))
        self.forward_address = _text("Email address", fm.get("email_address", ""))
        self.forward_profile = w.Dropdown(description="Incoming profile", style=_STYLE)
        self.forward_delete = w.Checkbox(
            description="Delete messages after processing", value=fm.get("delete_emails", True)
        )
        self.add_forward = w.Button(description="Add forward mailbox", button_style="primary")
        self.entries_view = w.HTML()

        self.buttons = {
            name: w.Button(description=name, icon=icon)
            for name, icon in (
                ("Load Data", "download"),
                ("Test Access", "plug"),
                ("Show diff", "eye"),
                ("Publish", "upload"),
            )
        }
        self.buttons["Publish"].button_style = "warning"
        self._wire()
        self._refresh()
        self.widget = self._layout()

    # --- layout -----------------------------------------------------------------------------

    def _layout(self) -> w.Widget:
        profiles = w.VBox(
            [
                self.profile_picker,
                self.profile_name,
                self.direction,
                self.kind,
                *self.profile_fields.values(),
                self.save_profile,
            ]
        )
        deployments = w.VBox(
            [
                self.deployment_picker,
                self.default_incoming,
                self.default_outgoing,
                self.save_deployment,
            ]
        )
        forward = w.VBox(
            [
                self.entries_view,
                w.HTML("<b>New forward mailbox</b>"),
                self.forward_name,
                self.forward_address,
                self.forward_profile,
                self.forward_delete,
                self.add_forward,
            ]
        )
        tabs = w.Tab(children=[profiles, deployments, forward])
        for index, title in enumerate(
            ["Configuration profiles", "Deployments", "Users, queues, forward mailboxes"]
        ):
            tabs.set_title(index, title)
        title = w.HTML(
            "<h3 class='emailrouter-config-form'>Email Router Configuration Manager</h3>"
            f"<p>Publishing writes <code>{html.escape(str(self.publish_to))}</code></p>"
        )
        actions = w.HBox(list(self.buttons.values()))
        return w.VBox([title, tabs, actions, self.output])

    def show(self) -> None:
        display(self.widget)

    def _ipython_display_(self) -> None:
        self.show()

    # --- events -----------------------------------------------------------------------------

    def _wire(self) -> None:
        self.profile_picker.observe(lambda _: self._fill_profile(), names="value")
        self.deployment_picker.observe(lambda _: self._fill_deployment(), names="value")
        self.save_profile.on_click(self._guard(self.on_save_profile))
        self.save_deployment.on_click(self._guard(self.on_save_deployment))
        self.add_forward.on_click(self._guard(self.on_add_forward))
        self.buttons["Load Data"].on_click(self._guard(self.on_load_data))
        self.buttons["Test Access"].on_click(self._guard(self.on_test_access))
        self.buttons["Show diff"].on_click(self._guard(self.on_show_diff))
        self.buttons["Publish"].on_click(self._guard(self.on_publish))

    def _guard(self, handler: Callable[[], Any]) -> Callable[[Any], None]:
        def run(_button: Any) -> None:
            self.output.clear_output()
            with self.output:
                try:
                    handler()
                except Exception as exc:  # shown to the person, the form stays usable
                    display(w.HTML(f"<b style='color:#a11'>{html.escape(str(exc))}</b>"))
            self._refresh()

        return run

    def on_save_profile(self) -> None:
        values: dict[str, Any] = {
            attr: (widget.value if attr == "use_ssl" else widget.value.strip() or None)
            for attr, widget in self.profile_fields.items()
        }
        profile = Profile(
            self.profile_name.value.strip(), self.direction.value, self.kind.value, **values
        )
        self.editor.set_profile(profile)
        self.plan = None
        display(w.HTML(f"saved profile <b>{html.escape(profile.name)}</b> ({profile.direction})"))

    def on_save_deployment(self) -> None:
        current = self.editor.deployment(self.deployment_picker.value)
        updated = Deployment(
            current.crm_server_url,
            current.crm_auth_mode,
            current.crm_user,
            self.default_incoming.value,
            self.default_outgoing.value,
        )
        self.editor.set_deployment(updated)
        self.plan = None
        display(w.HTML(f"saved deployment {html.escape(updated.crm_server_url)}"))

    def on_add_forward(self) -> None:
        entry = self.editor.add_forward_mailbox(
            self.forward_name.value.strip(),
            self.forward_address.value.strip(),
            profile=self.forward_profile.value,
            deployment=self.deployment_picker.value,
            delete_emails=self.forward_delete.value,
        )
        self.plan = None
        display(w.HTML(f"added forward mailbox {html.escape(entry.label)}"))

    def on_load_data(self) -> None:
        if self._load_data is None:
            raise RuntimeError("no CRM given to this notebook (parameter crm); Load Data is off")
        display(self._load_data())
        self.plan = None

    def on_test_access(self) -> None:
        if self._test_access is None:
            raise RuntimeError("Test Access is not available in this notebook")
        display(self._test_access())

    def on_show_diff(self) -> None:
        if self.publish_to is None:
            raise RuntimeError("no file to publish to; set publish_to")
        self.plan = plan_publish(self.editor.config, self.publish_to)
        display(self.plan)

    def on_publish(self) -> None:
        if self.plan is None:
            raise RuntimeError("press 'Show diff' first: publishing writes only what you have seen")
        result = apply_publish(self.plan)
        self.plan = None
        display(w.HTML(html.escape(str(result))))

    # --- state -> widgets -------------------------------------------------------------------

    def _refresh(self) -> None:
        keys = [f"{name} ({direction})" for name, direction in self.editor.profiles]
        _set_options(self.profile_picker, keys)
        incoming = [n for n, d in self.editor.profiles if d == "incoming"]
        outgoing = [n for n, d in self.editor.profiles if d == "outgoing"]
        _set_options(self.forward_profile, incoming)
        _set_options(self.default_incoming, [None, *incoming])
        _set_options(self.default_outgoing, [None, *outgoing])
        _set_options(
            self.deployment_picker, [d.crm_server_url for d in self.editor.deployments.values()]
        )
        self._fill_profile()
        self._fill_deployment()
        self.entries_view.value = _entries_html(self.editor)

    def _fill_profile(self) -> None:
        picked = self.profile_picker.value
        if not picked:
            return
        name, _, direction = picked.rpartition(" (")
        profile = self.editor.profiles.get((name, direction.rstrip(")")))
        if profile is None:
            return
        self.profile_name.value = profile.name
        self.direction.value = profile.direction
        if profile.kind in self.kind.options:
            self.kind.value = profile.kind
        for attr, widget in self.profile_fields.items():
            value = getattr(profile, attr)
            widget.value = (value is not False) if attr == "use_ssl" else (value or "")

    def _fill_deployment(self) -> None:
        if not self.deployment_picker.value:
            return
        deployment = self.editor.deployment(self.deployment_picker.value)
        if deployment.default_incoming in self.default_incoming.options:
            self.default_incoming.value = deployment.default_incoming
        if deployment.default_outgoing in self.default_outgoing.options:
            self.default_outgoing.value = deployment.default_outgoing


def _text(description: str, value: str = "") -> w.Text:
    return w.Text(value=value, description=description, style=_STYLE, layout=_LAYOUT)


def _set_options(widget: w.Dropdown, options: Sequence[Any]) -> None:
    current = widget.value
    widget.options = list(options)
    if current in options:
        widget.value = current
    elif options:
        widget.value = options[0]


def _entries_html(editor: ConfigEditor) -> str:
    rows = []
    for e in editor.entries():
        incoming = f"forward: {e.forward_mailbox}" if e.forward_mailbox else e.incoming
        cells = (e.kind, e.label, incoming, e.outgoing, "yes" if e.enabled else "no")
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c or ''))}</td>" for c in cells))
    head = "".join(f"<th>{h}</th>" for h in ("kind", "mailbox", "incoming", "outgoing", "enabled"))
    return (
        f"<table class='emailrouter-entries'><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


__all__ = ["ConfigForm"]
