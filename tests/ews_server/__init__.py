"""A protocol-level fake Exchange Web Services server for tests (see README.md).

with FakeEws() as ews:
    ews.add_user("svc@contoso.example", "pw", logons=("CONTOSO\\\\svc",), impersonation=True)
    ews.add_user("support@contoso.example")
    ews.deliver("support@contoso.example", message)
    ...  # point exchangelib (or an ews:// mailbox URL) at ews.url
    assert ews.counts() == {"GetFolder": 2, "FindItem": 1, "GetItem": 1}
"""

from .server import EWS_PATH, FakeEws, Fault, LoggedRequest
from .store import Item, Store, StoreError

__all__ = ["EWS_PATH", "FakeEws", "Fault", "Item", "LoggedRequest", "Store", "StoreError"]
