"""The Configuration Manager: profiles, deployments, entries, Load Data and Publish.

Edits go through :class:`ConfigEditor` onto the model the writer persists; Load Data is a plan
made from the demo CRM; Publish shows the diff, keeps a timestamped backup, and applying twice
changes nothing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from emailrouter_lib.config import load_config, validate_config
from emailrouter_lib.config.edit import ConfigEditor, Deployment, Profile
from emailrouter_lib.config.load_data import apply_load_data, plan_load_data
from emailrouter_lib.config.publish import apply_publish, plan_publish
from emailrouter_lib.crm import demo as seed
from emailrouter_lib.crm import init_crm, open_crm
from emailrouter_lib.errors import ConfigError

SAMPLE = (
    Path(__file__).resolve().parents[1]
    / "emailrouter_lib/demo/data/config/Microsoft.Crm.Tools.EmailAgent.xml"
)
SHARED_SAMPLE = (
    Path(__file__).resolve().parents[2]
    / "shared/reference/samples/Microsoft.Crm.Tools.EmailAgent.xml"
)
CRM_URL = "https://crm.contoso.local/Contoso"
POP3 = Profile(
    "Demo POP3",
    "incoming",
    "pop3",
    email_server_type="POP3",
    email_server_url="pop.contoso.example:995",
    email_auth_mode="ClearText",
    email_access_credentials="OtherSpecified",
    email_user="crm-forward",
    use_ssl=True,
)


@pytest.fixture
def sample(tmp_path) -> Path:
    target = tmp_path / "Microsoft.Crm.Tools.EmailAgent.xml"
    shutil.copyfile(SAMPLE, target)
    return target


@pytest.fixture(scope="module")
def demo_crm(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('crm') / 'crm.sqlite'}"
    init_crm(url, demo=True)
    crm = open_crm(url)
    yield crm
    crm.close()


@pytest.mark.skipif(not SHARED_SAMPLE.exists(), reason="../shared/reference is not beside the repo")
def test_the_vendored_sample_is_the_reference_sample():
    assert SAMPLE.read_bytes() == SHARED_SAMPLE.read_bytes()


# --- the model --------------------------------------------------------------------------------


def test_profiles_deployments_and_entries_of_the_sample(sample):
    editor = ConfigEditor(load_config(sample))
    assert sorted(editor.profiles) == [
        ("Exchange 2010 incoming", "incoming"),
        ("POP3 incoming", "incoming"),
        ("SMTP outgoing", "outgoing"),
    ]
    deployment = editor.deployment()
    assert deployment.crm_server_url == CRM_URL
    assert deployment.default_incoming == "Exchange 2010 incoming"
    assert deployment.default_outgoing == "SMTP outgoing"
    entries = {e.id or e.email_address: e for e in editor.entries()}
    assert entries["0a1b2c3d-13d8-e011-9077-00155d012a01"].incoming == "Exchange 2010 incoming"
    assert entries["0a1b2c3d-13d8-e011-9077-00155d012a01"].outgoing == "SMTP outgoing"
    assert entries["0a1b2c3d-13d8-e011-9077-00155d012a03"].forward_mailbox == "crm-sink@contoso.com"
    assert entries["5e6f7a8b-19d8-e011-9077-00155d012b02"].incoming == "POP3 incoming"
    forward = entries["crm-sink@contoso.com"]
    assert forward.kind == "forward" and forward.delete_emails and forward.name == "CRM sink"


def test_adding_a_profile_and_a_forward_mailbox_writes_providers(sample):
    config = load_config(sample)
    editor = ConfigEditor(config)
    editor.set_profile(POP3)
    editor.add_forward_mailbox(
        "Contoso forward", "crm-forward@contoso.example", profile="Demo POP3"
    )
    with pytest.raises(ConfigError, match="already in this configuration"):
        editor.add_forward_mailbox("again", "CRM-Forward@contoso.example", profile="Demo POP3")
    with pytest.raises(ConfigError, match="no incoming profile named 'Nope'"):
        editor.add_forward_mailbox("x", "x@contoso.example", profile="Nope")
    apply_publish(plan_publish(config))
    again = ConfigEditor(load_config(sample))
    assert ("Demo POP3", "incoming") in again.profiles
    forward = [e for e in again.entries() if e.email_address == "crm-forward@contoso.example"]
    assert forward and forward[0].incoming == "Demo POP3" and forward[0].delete_emails
    provider = again.config.forward_mailboxes[-1]
    assert provider.kind == "pop3" and provider.email_user == "crm-forward"
    assert provider.provider_class.endswith("Pop3PollingMailboxProvider")
    assert validate_config(again.config).ok


def test_moving_a_queue_and_changing_a_profile(sample):
    config = load_config(sample)
    editor = ConfigEditor(config)
    editor.set_profile(POP3)
    queue = "5e6f7a8b-19d8-e011-9077-00155d012b02"
    editor.set_entry("queue", queue, incoming="Demo POP3")
    # the old POP3 provider served only this queue: it goes; the outgoing route stays
    assert ("POP3 incoming", "incoming") in editor.profiles
    assert [p.profile_name for p in config.incoming].count("POP3 incoming") == 0
    assert editor.entry(queue).outgoing == "SMTP outgoing"
    changed = Profile(**{**POP3.__dict__, "email_server_url": "pop2.contoso.example:995"})
    editor.set_profile(changed)
    assert all(
        p.email_server_url == "pop2.contoso.example:995"
        for p in config.providers
        if p.profile_name == "Demo POP3"
    )
    with pytest.raises(ConfigError, match="still used"):
        editor.remove_profile("Demo POP3", "incoming")
    editor.remove_profile("POP3 incoming", "incoming")


def test_disable_enable_and_remove_an_entry(sample):
    config = load_config(sample)
    editor = ConfigEditor(config)
    user = "0a1b2c3d-13d8-e011-9077-00155d012a02"
    editor.set_entry("user", user, enabled=False)
    assert all(user not in p.user_ids for p in config.providers)
    assert editor.entry(user).enabled is False
    editor.set_entry("user", user, enabled=True)
    assert editor.entry(user).incoming == "Exchange 2010 incoming"
    assert editor.entry(user).outgoing == "SMTP outgoing"
    editor.remove_entry(user)
    assert editor.entry(user) is None


def test_new_entries_take_the_deployments_defaults_and_bad_input_is_named(sample):
    editor = ConfigEditor(load_config(sample))
    new = "11111111-2222-3333-4444-555555555555"
    entry = editor.set_entry("user", "{" + new.upper() + "}")
    assert (entry.id, entry.incoming, entry.outgoing) == (
        new,
        "Exchange 2010 incoming",
        "SMTP outgoing",
    )
    with pytest.raises(ConfigError, match="not a GUID"):
        editor.set_entry("user", "bob")
    with pytest.raises(ConfigError, match="is a user in this configuration, not a queue"):
        editor.set_entry("queue", new)
    with pytest.raises(ConfigError, match="cannot be outgoing"):
        Profile("p", "outgoing", "pop3")
    with pytest.raises(ConfigError, match="unknown setting colour"):
        Profile.from_params({"name": "p", "direction": "incoming", "colour": "red"})


def test_a_config_from_scratch(tmp_path):
    from emailrouter_lib.config import RouterConfig

    config = RouterConfig()
    editor = ConfigEditor(config)
    editor.set_profile(POP3)
    editor.set_profile(Profile("Relay", "outgoing", "smtp", email_server_url="smtp:25"))
    editor.set_deployment(Deployment(CRM_URL, default_incoming="Demo POP3"))
    editor.set_entry("queue", "5e6f7a8b-19d8-e011-9077-00155d012b01", outgoing="Relay")
    plan = plan_publish(config, tmp_path / "new.xml")
    assert plan.current is None and "new file" in plan.summary()
    apply_publish(plan)
    again = ConfigEditor(load_config(tmp_path / "new.xml"))
    assert again.entry("5e6f7a8b-19d8-e011-9077-00155d012b01").outgoing == "Relay"


# --- Load Data --------------------------------------------------------------------------------


def test_load_data_from_the_demo_crm_is_a_plan(sample, demo_crm):
    config = load_config(sample)
    editor = ConfigEditor(config)
    editor.add_forward_mailbox("Contoso", seed.FORWARD_MAILBOX.address, profile="POP3 incoming")
    editor.set_entry("user", seed.BOB.id, outgoing=None)  # Bob: in, but not out yet
    before = sample.read_bytes()
    plan = plan_load_data(editor, demo_crm.recipients())
    assert sample.read_bytes() == before and editor.entry(seed.BOB.id).outgoing is None  # a plan
    rows = {r.email_address or r.id: r for r in plan.rows}
    alice = rows[seed.ALICE.address]
    assert (alice.action, alice.incoming, alice.outgoing) == (
        "unchanged",
        "Exchange 2010 incoming",
        "SMTP outgoing",
    )
    bob = rows[seed.BOB.address]
    assert (bob.action, bob.was_outgoing, bob.outgoing) == ("changed", None, "SMTP outgoing")
    frank = rows[seed.FRANK.address]  # Forward Mailbox delivery: the sample's forward box
    assert frank.forward_mailbox == "crm-sink@contoso.com"
    # the demo CRM holds the records the bundled sample names, by the same GUIDs (issue 15.6)
    assert rows[seed.SUPPORT.address].action == "unchanged"
    assert rows[seed.SALES.address].action == "unchanged"
    gina = rows[seed.GINA.address]  # listed in the sample, but her address is not approved
    assert gina.action == "gone" and "not approved" in gina.reason
    assert seed.DANA.address not in rows  # the CRM does not route Dana's mail: not listed
    assert [r.id for r in plan.rows if r.action == "gone"] == [seed.GINA.id]
    assert plan.counts()["new"] == 0 and plan.counts()["changed"] == 2
    assert "changed" in str(plan) and "<table>" in plan._repr_html_()

    assert apply_load_data(editor, plan, demo_crm.recipients()) == 3
    assert editor.entry(seed.ALICE.id).email_address == seed.ALICE.address
    assert editor.entry(seed.GINA.id) is None
    again = plan_load_data(editor, demo_crm.recipients())
    assert again.changes == [] and again.counts()["unchanged"] == 5
    assert apply_load_data(editor, again) == 0

    apply_publish(plan_publish(config))
    reread = ConfigEditor(load_config(sample))
    third = plan_load_data(reread, demo_crm.recipients())
    assert third.changes == []  # what was published is what the CRM says
    assert validate_config(reread.config).ok


def test_load_data_never_drops_a_profile_unasked(sample, demo_crm):
    """The POP3 profile serves only the Sales queue: when Sales is gone from the CRM, removing
    its entry would remove the profile (server, port, SSL) too. The plan says so and keeps it
    unless asked (issue 15.6)."""
    records = [r for r in demo_crm.recipients() if r.id != seed.SALES.id]
    editor = ConfigEditor(load_config(sample))
    plan = plan_load_data(editor, records)
    sales = next(r for r in plan.rows if r.id == seed.SALES.id)
    assert sales.action == "gone" and sales.removes_profile == "POP3 incoming"
    assert plan.kept_profiles == ["POP3 incoming"] and sales not in plan.changes
    assert "kept 'POP3 incoming'" in plan.summary() and "removes profile" in str(plan)
    apply_load_data(editor, plan, records)
    assert editor.entry(seed.SALES.id) is not None
    assert "POP3 incoming" in {p.profile_name for p in editor.config.providers}

    asked = plan_load_data(editor, records, remove_profiles=True)
    assert asked.kept_profiles == [] and apply_load_data(editor, asked, records) == 1
    assert editor.entry(seed.SALES.id) is None
    assert "POP3 incoming" not in {p.profile_name for p in editor.config.providers}


def test_load_data_can_keep_gone_entries(sample, demo_crm):
    editor = ConfigEditor(load_config(sample))
    plan = plan_load_data(editor, demo_crm.recipients(), remove_gone=False)
    apply_load_data(editor, plan)
    assert editor.entry(seed.GINA.id) is not None


# --- Publish ----------------------------------------------------------------------------------


def test_publish_shows_the_diff_keeps_a_backup_and_applying_twice_changes_nothing(sample):
    original = sample.read_bytes()
    config = load_config(sample)
    config.system.log_level = 3
    plan = plan_publish(config)
    assert plan.changed and (plan.added, plan.removed) == (1, 1)
    assert "-    <LogLevel>1</LogLevel>" in plan.diff
    assert "+    <LogLevel>3</LogLevel>" in plan.diff
    assert sample.read_bytes() == original  # a plan writes nothing
    result = apply_publish(plan)
    assert result.written and result.backup is not None
    assert result.backup.name.startswith(sample.name + ".") and result.backup.suffix == ".bak"
    assert result.backup.read_bytes() == original
    assert "kept as" in str(result)
    second = plan_publish(config)
    assert not second.changed and second.diff == ""
    assert not apply_publish(second).written
    assert sorted(p.name for p in sample.parent.iterdir()) == sorted(
        [sample.name, result.backup.name]
    )


def test_the_diff_never_shows_a_password(sample):
    config = load_config(sample)
    config.providers[0].email_user = "CONTOSO\\svc-new"
    plan = plan_publish(config)
    assert "AQAAANCMnd8BFdERjHoAwE" not in plan.diff + plan._repr_html_()
    assert "<EmailPassword>***</EmailPassword>" in plan.diff


def test_publish_refuses_a_file_changed_since_the_plan(sample):
    config = load_config(sample)
    config.system.log_level = 2
    plan = plan_publish(config)
    sample.write_bytes(sample.read_bytes() + b"<!-- edited by someone else -->\n")
    with pytest.raises(ConfigError, match="changed after the publish plan"):
        apply_publish(plan)


# --- the ipywidgets form (without a browser; tests/test_jupyterlab.py renders it for real) ------


def test_the_form_edits_the_same_configuration(sample):
    pytest.importorskip("ipywidgets")
    from emailrouter_lib.config.widgets import ConfigForm

    config = load_config(sample)
    form = ConfigForm(
        ConfigEditor(config),
        forward_mailbox={"name": "Form sink", "email_address": "form-sink@contoso.com"},
    )
    assert form.profile_fields["email_server_url"].value.startswith("https://mail.contoso.local")
    assert form.forward_address.value == "form-sink@contoso.com"  # pre-filled from parameters
    form.profile_picker.value = "SMTP outgoing (outgoing)"
    assert (form.direction.value, form.kind.value) == ("outgoing", "smtp")
    form.profile_name.value = "Relay 2"
    form.profile_fields["email_server_url"].value = "relay2.contoso.local:25"
    form.save_profile.click()
    assert ("Relay 2", "outgoing") in form.editor.profiles
    form.forward_profile.value = "POP3 incoming"
    form.add_forward.click()
    assert "form-sink@contoso.com" in form.editor.forward_mailboxes()
    before = sample.read_bytes()
    form.buttons["Publish"].click()  # refused: no diff shown yet
    assert sample.read_bytes() == before and form.plan is None
    form.buttons["Show diff"].click()
    assert form.plan is not None and form.plan.changed
    form.buttons["Publish"].click()
    assert "form-sink@contoso.com" in sample.read_text(encoding="utf-8")
