"""The EWS operations the fake answers, one function each, and how a request picks its mailbox.

Whose mailbox an operation acts on is decided as Exchange does (never from ``X-AnchorMailbox``,
which is only a routing hint):

1. the *principal* is the impersonated user when the SOAP header has ``ExchangeImpersonation``
   (the logged-on account must hold ApplicationImpersonation), else the logged-on user;
2. a request that names a mailbox acts on it: ``DistinguishedFolderId/Mailbox``, a ``FolderId`` or
   ``ItemId`` (ids carry their mailbox), ``MailboxSmtpAddress`` of the rule operations; without
   one it acts on the principal's own mailbox;
3. the principal needs FullAccess on any mailbox other than its own (``ErrorAccessDenied``).
"""

from __future__ import annotations

import base64
import email
import email.policy
import email.utils
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from lxml import etree

from .soap import el, find, findall, local, qname, text
from .store import Folder, Item, Rule, Store, StoreError, User


@dataclass
class Context:
    """One request as the operations see it."""

    store: Store
    logon: User
    principal: User
    body: etree._Element  # the operation element (m:FindItem...)
    mailboxes: set[str] = field(default_factory=set)  # mailboxes the request touched (for the log)
    items: int = 0  # items returned or changed (for the log)
    sent: list[dict] = field(default_factory=list)

    def open_mailbox(self, address: str) -> str:
        address = address.lower()
        if address not in self.store.users:
            raise StoreError("ErrorNonExistentMailbox", f"No mailbox with address {address}.")
        if address != self.principal.address and address not in self.principal.full_access:
            raise StoreError(
                "ErrorAccessDenied",
                f"{self.principal.address} has no access to the mailbox {address}.",
            )
        self.mailboxes.add(address)
        return address

    def folder(self, node) -> Folder:
        """The folder a ``t:FolderId`` / ``t:DistinguishedFolderId`` element names."""
        if local(node) == "DistinguishedFolderId":
            mailbox = text(node, "t:Mailbox/t:EmailAddress") or self.principal.address
            return self.store.distinguished(self.open_mailbox(mailbox), node.get("Id"))
        folder = self.store.folder(node.get("Id"))
        self.open_mailbox(folder.mailbox)
        return folder

    def item(self, node) -> Item:
        item = self.store.item(node.get("Id"))
        self.open_mailbox(item.mailbox)
        return item


Handler = Callable[[Context], etree._Element]


# -- response shapes -----------------------------------------------------------------------------
def _response(op: str, messages: list[etree._Element]) -> etree._Element:
    return el(f"m:{op}Response", None, el("m:ResponseMessages", None, *messages))


def _ok(op: str, *children) -> etree._Element:
    return el(
        f"m:{op}ResponseMessage",
        {"ResponseClass": "Success"},
        el("m:ResponseCode", text="NoError"),
        *children,
    )


def _error(op: str, exc: StoreError, *children) -> etree._Element:
    return el(
        f"m:{op}ResponseMessage",
        {"ResponseClass": "Error"},
        el("m:MessageText", text=exc.text),
        el("m:ResponseCode", text=exc.code),
        el("m:DescriptiveLinkKey", text="0"),
        *children,
    )


def _each(op: str, nodes, act: Callable, empty: Callable[[], list] = list) -> etree._Element:
    """One response message per id: its result, or its own error (the others still run)."""
    messages = []
    for node in nodes:
        try:
            messages.append(_ok(op, *act(node)))
        except StoreError as exc:
            messages.append(_error(op, exc, *empty()))
    return _response(op, messages)


# -- folders -------------------------------------------------------------------------------------
def folder_xml(ctx: Context, folder: Folder) -> etree._Element:
    store = ctx.store
    return el(
        "t:Folder",
        None,
        el("t:FolderId", {"Id": folder.id, "ChangeKey": "AQAAAA=="}),
        el("t:ParentFolderId", {"Id": folder.parent_id, "ChangeKey": "AQAAAA=="})
        if folder.parent_id
        else None,
        el("t:FolderClass", text=folder.folder_class) if folder.folder_class else None,
        el("t:DisplayName", text=folder.name),
        el("t:TotalCount", text=str(len(store.in_folder(folder)))),
        el("t:ChildFolderCount", text=str(len(store.children(folder)))),
        el("t:UnreadCount", text="0"),
    )


def get_folder(ctx: Context) -> etree._Element:
    ids = find(ctx.body, "m:FolderIds")
    return _each(
        "GetFolder",
        list(ids),
        lambda node: [el("m:Folders", None, folder_xml(ctx, ctx.folder(node)))],
        lambda: [el("m:Folders")],
    )


def find_folder(ctx: Context) -> etree._Element:
    restriction = find(ctx.body, "m:Restriction")

    def act(node):
        parent = ctx.folder(node)
        found = [f for f in ctx.store.children(parent) if matches(restriction, _folder_value(f))]
        return [
            el(
                "m:RootFolder",
                {
                    "IndexedPagingOffset": len(found),
                    "TotalItemsInView": len(found),
                    "IncludesLastItemInRange": "true",
                },
                el("t:Folders", None, *(folder_xml(ctx, f) for f in found)),
            )
        ]

    return _each("FindFolder", list(find(ctx.body, "m:ParentFolderIds")), act)


def create_folder(ctx: Context) -> etree._Element:
    parent = ctx.folder(find(ctx.body, "m:ParentFolderId")[0])
    messages = []
    for node in find(ctx.body, "m:Folders"):
        try:
            folder = ctx.store.create_folder(
                parent, text(node, "t:DisplayName", ""), text(node, "t:FolderClass")
            )
            messages.append(
                _ok(
                    "CreateFolder",
                    el(
                        "m:Folders",
                        None,
                        el(
                            "t:Folder",
                            None,
                            el("t:FolderId", {"Id": folder.id, "ChangeKey": "AQ=="}),
                        ),
                    ),
                )
            )
        except StoreError as exc:
            messages.append(_error("CreateFolder", exc, el("m:Folders")))
    return _response("CreateFolder", messages)


def _folder_value(folder: Folder) -> Callable[[str], str | None]:
    return lambda uri: {
        "folder:DisplayName": folder.name,
        "folder:FolderClass": folder.folder_class,
    }.get(uri)


# -- items ---------------------------------------------------------------------------------------
def _mailbox_xml(tag: str, address: str | None) -> etree._Element | None:
    if not address:
        return None
    name, addr = email.utils.parseaddr(address)
    return el(
        tag,
        None,
        el(
            "t:Mailbox",
            None,
            el("t:Name", text=name or addr),
            el("t:EmailAddress", text=addr),
            el("t:RoutingType", text="SMTP"),
            el("t:MailboxType", text="OneOff"),
        ),
    )


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _attachments_xml(item: Item) -> etree._Element:
    return el(
        "t:Attachments",
        None,
        *(
            el(
                "t:ItemAttachment",
                None,
                el("t:AttachmentId", {"Id": a.id}),
                el("t:Name", text=a.name),
                el("t:ContentType", text="message/rfc822"),
                el("t:Size", text=str(len(a.mime))),
                el("t:IsInline", text="false"),
            )
            for a in item.attachments
        ),
    )


# (field URI, builder) in the order of the EWS schema's ItemType / MessageType
ITEM_FIELDS: list[tuple[str, Callable[[Item], etree._Element | None]]] = [
    (
        "item:MimeContent",
        lambda i: el(
            "t:MimeContent", {"CharacterSet": "UTF-8"}, text=base64.b64encode(i.mime).decode()
        ),
    ),
    (
        "item:ParentFolderId",
        lambda i: el("t:ParentFolderId", {"Id": i.folder_id, "ChangeKey": "AQ=="}),
    ),
    ("item:ItemClass", lambda i: el("t:ItemClass", text=i.item_class)),
    ("item:Subject", lambda i: el("t:Subject", text=i.subject)),
    ("item:DateTimeReceived", lambda i: el("t:DateTimeReceived", text=_iso(i.received))),
    ("item:Size", lambda i: el("t:Size", text=str(i.size))),
    (
        "item:HasAttachments",
        lambda i: el("t:HasAttachments", text=str(bool(i.attachments)).lower()),
    ),
    ("item:Attachments", lambda i: _attachments_xml(i) if i.attachments else None),
    ("item:DateTimeSent", lambda i: el("t:DateTimeSent", text=_iso(i.received))),
    ("item:DateTimeCreated", lambda i: el("t:DateTimeCreated", text=_iso(i.received))),
    ("message:Sender", lambda i: _mailbox_xml("t:Sender", i.sender)),
    (
        "message:InternetMessageId",
        lambda i: el("t:InternetMessageId", text=i.message_id) if i.message_id else None,
    ),
    ("message:From", lambda i: _mailbox_xml("t:From", i.sender)),
    ("message:IsRead", lambda i: el("t:IsRead", text="false")),
]
DEFAULT_SHAPE = {
    "item:ItemClass",
    "item:Subject",
    "item:DateTimeReceived",
    "item:Size",
    "item:HasAttachments",
    "message:From",
}


def _requested(shape) -> set[str]:
    base = text(shape, "t:BaseShape", "IdOnly")
    uris = {f.get("FieldURI") for f in findall(shape, "t:AdditionalProperties/t:FieldURI")}
    if base == "AllProperties":
        uris |= {uri for uri, _ in ITEM_FIELDS if uri != "item:MimeContent"}
    elif base == "Default":
        uris |= DEFAULT_SHAPE
    if text(shape, "t:IncludeMimeContent") == "true":
        uris.add("item:MimeContent")
    return uris


def item_xml(item: Item, uris: set[str]) -> etree._Element:
    node = el(f"t:{item.element}")
    node.append(el("t:ItemId", {"Id": item.id, "ChangeKey": item.change_key}))
    for uri, build in ITEM_FIELDS:
        if uri in uris:
            child = build(item)
            if child is not None:
                if uri == "item:MimeContent":
                    node.insert(0, child)
                else:
                    node.append(child)
    return node


def _item_value(item: Item) -> Callable[[str], str | None]:
    values = {
        "item:ItemClass": item.item_class,
        "item:Subject": item.subject,
        "item:DateTimeReceived": _iso(item.received),
        "item:Size": str(item.size),
        "message:InternetMessageId": item.message_id,
        "item:HasAttachments": str(bool(item.attachments)).lower(),
    }
    return values.get


def matches(node, value: Callable[[str], str | None]) -> bool:
    """The subset of EWS restrictions the fake evaluates (string comparisons ignore case)."""
    if node is None:
        return True
    kind = local(node)
    if kind == "Restriction":
        return all(matches(child, value) for child in node)
    if kind == "And":
        return all(matches(child, value) for child in node)
    if kind == "Or":
        return any(matches(child, value) for child in node)
    if kind == "Not":
        return not matches(node[0], value)
    uri_node = find(node, "t:FieldURI")
    actual = value(uri_node.get("FieldURI")) if uri_node is not None else None
    if kind == "Exists":
        return actual is not None
    constant = find(node, "t:Constant")
    if constant is None:
        constant = find(node, "t:FieldURIOrConstant/t:Constant")
    wanted = constant.get("Value") if constant is not None else None
    if actual is None or wanted is None:
        return False
    a, w = actual.lower(), wanted.lower()
    if kind == "Contains":
        mode = node.get("ContainmentMode", "Substring")
        return a == w if mode == "FullString" else a.startswith(w) if mode == "Prefixed" else w in a
    compare = {
        "IsEqualTo": a == w,
        "IsNotEqualTo": a != w,
        "IsGreaterThan": a > w,
        "IsGreaterThanOrEqualTo": a >= w,
        "IsLessThan": a < w,
        "IsLessThanOrEqualTo": a <= w,
    }
    return compare.get(kind, False)


def find_item(ctx: Context, *, find_count_limit: int) -> etree._Element:
    uris = _requested(find(ctx.body, "m:ItemShape"))
    restriction = find(ctx.body, "m:Restriction")
    view = find(ctx.body, "m:IndexedPageItemView")
    limit = (
        int(view.get("MaxEntriesReturned", find_count_limit))
        if view is not None
        else find_count_limit
    )
    limit = min(limit, find_count_limit)
    offset = int(view.get("Offset", 0)) if view is not None else 0
    orders = findall(ctx.body, "m:SortOrder/t:FieldOrder")

    def act(node):
        folder = ctx.folder(node)
        found = [i for i in ctx.store.in_folder(folder) if matches(restriction, _item_value(i))]
        found.sort(key=lambda i: i.received, reverse=True)  # Exchange's default: newest first
        for order in reversed(orders):
            uri = find(order, "t:FieldURI").get("FieldURI")
            found.sort(
                key=lambda i, uri=uri: _item_value(i)(uri) or "",
                reverse=order.get("Order") == "Descending",
            )
        if view is not None and view.get("BasePoint") == "End":
            found.reverse()
        page = found[offset : offset + limit]
        ctx.items += len(page)
        last = offset + len(page) >= len(found)
        return [
            el(
                "m:RootFolder",
                {
                    "IndexedPagingOffset": offset + len(page),
                    "TotalItemsInView": len(found),
                    "IncludesLastItemInRange": str(last).lower(),
                },
                el("t:Items", None, *(item_xml(i, uris) for i in page)),
            )
        ]

    return _each("FindItem", list(find(ctx.body, "m:ParentFolderIds")), act)


def get_item(ctx: Context) -> etree._Element:
    uris = _requested(find(ctx.body, "m:ItemShape"))

    def act(node):
        item = ctx.item(node)
        ctx.items += 1
        return [el("m:Items", None, item_xml(item, uris))]

    return _each("GetItem", list(find(ctx.body, "m:ItemIds")), act, lambda: [el("m:Items")])


def move_item(ctx: Context) -> etree._Element:
    target = ctx.folder(find(ctx.body, "m:ToFolderId")[0])

    def act(node):
        item = ctx.store.move(ctx.item(node), target)
        ctx.items += 1
        return [el("m:Items", None, item_xml(item, set()))]

    return _each("MoveItem", list(find(ctx.body, "m:ItemIds")), act, lambda: [el("m:Items")])


def delete_item(ctx: Context) -> etree._Element:
    delete_type = ctx.body.get("DeleteType", "HardDelete")

    def act(node):
        ctx.store.delete(ctx.item(node), delete_type)
        ctx.items += 1
        return []

    return _each("DeleteItem", list(find(ctx.body, "m:ItemIds")), act)


def _addresses(node, tag: str) -> list[str]:
    return [a.text.lower() for a in findall(node, f"t:{tag}/t:Mailbox/t:EmailAddress") if a.text]


def create_item(ctx: Context) -> etree._Element:
    disposition = ctx.body.get("MessageDisposition", "SaveOnly")
    saved_node = find(ctx.body, "m:SavedItemFolderId")
    messages = []
    for node in find(ctx.body, "m:Items"):
        try:
            mime_node = find(node, "t:MimeContent")
            if mime_node is not None and mime_node.text:
                mime = base64.b64decode(mime_node.text)
            else:
                mime = _compose(node, ctx.principal.address)
            parsed = email.message_from_bytes(mime, policy=email.policy.compat32)
            if not parsed.get("Message-ID"):  # Exchange gives every message an id
                parsed["Message-ID"] = email.utils.make_msgid(domain="fake-ews.test")
                mime = parsed.as_bytes()
            item_class = text(node, "t:ItemClass", "IPM.Note")
            created: Item | None = None
            sending = disposition in ("SendOnly", "SendAndSaveCopy")
            recipients = _recipients(node, parsed) if sending else []
            if sending and not recipients:
                raise StoreError("ErrorInvalidRecipients", "At least one recipient isn't valid.")
            if disposition in ("SaveOnly", "SendAndSaveCopy"):
                if saved_node is not None and len(saved_node):
                    folder = ctx.folder(saved_node[0])
                else:
                    default = "sentitems" if disposition == "SendAndSaveCopy" else "drafts"
                    mailbox = ctx.open_mailbox(ctx.principal.address)
                    folder = ctx.store.distinguished(mailbox, default)
                created = ctx.store.add_item(folder.mailbox, folder, mime, item_class=item_class)
            if sending:
                for address in recipients:
                    if address in ctx.store.users:  # local delivery; the rest leaves the org
                        inbox = ctx.store.distinguished(address, "inbox")
                        ctx.store.add_item(address, inbox, mime, item_class=item_class)
                ctx.sent.append(
                    {
                        "principal": ctx.principal.address,
                        "saved_in": created.mailbox if created else None,
                        "recipients": recipients,
                        "message_id": parsed.get("Message-ID"),
                        "disposition": disposition,
                    }
                )
            ctx.items += 1
            items = [item_xml(created, set())] if created and disposition == "SaveOnly" else []
            messages.append(_ok("CreateItem", el("m:Items", None, *items)))
        except StoreError as exc:
            messages.append(_error("CreateItem", exc, el("m:Items")))
    return _response("CreateItem", messages)


def _recipients(node, parsed) -> list[str]:
    found = [
        *_addresses(node, "ToRecipients"),
        *_addresses(node, "CcRecipients"),
        *_addresses(node, "BccRecipients"),
    ]
    for header in ("To", "Cc", "Bcc"):
        for _, addr in email.utils.getaddresses(parsed.get_all(header, [])):
            if addr:
                found.append(addr.lower())
    return list(dict.fromkeys(found))


def _compose(node, sender: str) -> bytes:
    msg = email.message.EmailMessage()
    msg["From"] = text(node, "t:From/t:Mailbox/t:EmailAddress") or sender
    for header, tag in (("To", "ToRecipients"), ("Cc", "CcRecipients")):
        addresses = _addresses(node, tag)
        if addresses:
            msg[header] = ", ".join(addresses)
    msg["Subject"] = text(node, "t:Subject", "")
    msg.set_content(text(node, "t:Body", "") or "")
    return msg.as_bytes()


def get_attachment(ctx: Context) -> etree._Element:
    uris = {"item:ItemClass", "item:Subject", "message:InternetMessageId", "message:From"}
    if text(ctx.body, "m:AttachmentShape/t:IncludeMimeContent") == "true":
        uris.add("item:MimeContent")

    def act(node):
        item, att = ctx.store.attachment(node.get("Id"))
        ctx.open_mailbox(item.mailbox)
        inner = Item(
            att.id, "AQ==", item.mailbox, item.folder_id, att.mime, "IPM.Note", item.received
        )
        parsed = email.message_from_bytes(att.mime, policy=email.policy.compat32)
        inner.subject = str(parsed.get("Subject", ""))
        inner.message_id = parsed.get("Message-ID")
        inner.sender = parsed.get("From")
        message = item_xml(inner, uris)
        message.remove(find(message, "t:ItemId"))  # an attached item has no id of its own
        ctx.items += 1
        return [
            el(
                "m:Attachments",
                None,
                el(
                    "t:ItemAttachment",
                    None,
                    el("t:AttachmentId", {"Id": att.id}),
                    el("t:Name", text=att.name),
                    el("t:ContentType", text="message/rfc822"),
                    message,
                ),
            )
        ]

    return _each(
        "GetAttachment", list(find(ctx.body, "m:AttachmentIds")), act, lambda: [el("m:Attachments")]
    )


# -- inbox rules ---------------------------------------------------------------------------------
def _rules_mailbox(ctx: Context) -> str:
    """``MailboxSmtpAddress`` when given; without it "the address of the logged on user"."""
    return ctx.open_mailbox(text(ctx.body, "m:MailboxSmtpAddress") or ctx.principal.address)


def _plain(op: str, *children, error: StoreError | None = None) -> etree._Element:
    """Rule responses are not wrapped in ResponseMessages; ResponseClass sits on the response."""
    if error is None:
        return el(
            f"m:{op}Response",
            {"ResponseClass": "Success"},
            el("m:ResponseCode", text="NoError"),
            *children,
        )
    return el(
        f"m:{op}Response",
        {"ResponseClass": "Error"},
        el("m:MessageText", text=error.text),
        el("m:ResponseCode", text=error.code),
        el("m:DescriptiveLinkKey", text="0"),
        *children,
    )


def get_inbox_rules(ctx: Context) -> etree._Element:
    try:
        mailbox = _rules_mailbox(ctx)
    except StoreError as exc:
        return _plain("GetInboxRules", error=exc)
    rules = ctx.store.rules[mailbox]
    ctx.items += len(rules)
    children = [el("m:OutlookRuleBlobExists", text="false")]
    if rules:  # no rules: no InboxRules element at all
        children.append(el("m:InboxRules", None, *(etree.fromstring(r.xml) for r in rules)))
    return _plain("GetInboxRules", *children)


def update_inbox_rules(ctx: Context) -> etree._Element:
    try:
        mailbox = _rules_mailbox(ctx)
        rules = ctx.store.rules[mailbox]
        new = list(rules)
        for op in find(ctx.body, "m:Operations"):
            kind = local(op)
            if kind == "CreateRuleOperation":
                rule = find(op, "t:Rule")
                rid = ctx.store.new_rule_id()
                _set_rule_id(rule, rid)
                new.append(Rule(rid, etree.tostring(rule)))
            elif kind in ("SetRuleOperation", "DeleteRuleOperation"):
                rid = text(op, "t:Rule/t:RuleId") or text(op, "t:RuleId")
                index = next((n for n, r in enumerate(new) if r.id == rid), None)
                if index is None:
                    raise StoreError(
                        "ErrorInboxRulesValidationError", f"Rule {rid} was not found in {mailbox}."
                    )
                if kind == "SetRuleOperation":
                    new[index] = Rule(rid, etree.tostring(find(op, "t:Rule")))
                else:
                    del new[index]
        new.sort(key=lambda r: int(text(etree.fromstring(r.xml), "t:Priority", "0") or 0))
        rules[:] = new  # all operations or none
        ctx.items += len(find(ctx.body, "m:Operations"))
    except StoreError as exc:
        return _plain("UpdateInboxRules", error=exc)
    return _plain("UpdateInboxRules")


def _set_rule_id(rule, rid: str) -> None:
    existing = find(rule, "t:RuleId")
    if existing is None:
        existing = etree.Element(qname("t:RuleId"))
        rule.insert(0, existing)
    existing.text = rid


# -- ConvertId -----------------------------------------------------------------------------------
def convert_id(ctx: Context) -> etree._Element:
    destination = ctx.body.get("DestinationFormat", "EwsId")
    messages = []
    for node in find(ctx.body, "m:SourceIds"):
        source, value = node.get("Format"), node.get("Id", "")
        try:
            raw = (
                bytes.fromhex(value)
                if source == "HexEntryId"
                else base64.b64decode(value, validate=True)
            )
            if ctx.store.owner_of(base64.b64encode(raw).decode()) is None:
                raise ValueError
        except ValueError:
            messages.append(
                _error("ConvertId", StoreError("ErrorInvalidIdMalformed", "Id is malformed."))
            )
            continue
        out = raw.hex().upper() if destination == "HexEntryId" else base64.b64encode(raw).decode()
        alt = el(
            "m:AlternateId", {"Format": destination, "Id": out, "Mailbox": node.get("Mailbox")}
        )
        alt.set("{http://www.w3.org/2001/XMLSchema-instance}type", "t:AlternateIdType")
        messages.append(_ok("ConvertId", alt))
    return _response("ConvertId", messages)


OPERATIONS: dict[str, Handler] = {
    "GetFolder": get_folder,
    "FindFolder": find_folder,
    "CreateFolder": create_folder,
    "GetItem": get_item,
    "MoveItem": move_item,
    "DeleteItem": delete_item,
    "CreateItem": create_item,
    "GetAttachment": get_attachment,
    "GetInboxRules": get_inbox_rules,
    "UpdateInboxRules": update_inbox_rules,
    "ConvertId": convert_id,
}

__all__ = ["OPERATIONS", "Context", "find_item", "item_xml", "matches"]
