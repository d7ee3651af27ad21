"""A strict fake Dataverse Web API: Microsoft's published schema per flavour, over the router's
SQLite CRM (README.md)."""

from .schema import FLAVOURS, load_schema
from .server import FakeDataverse, Fault, Faults, Logged, RequestLog

__all__ = ["FLAVOURS", "FakeDataverse", "Fault", "Faults", "Logged", "RequestLog", "load_schema"]
