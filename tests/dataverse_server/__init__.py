"""A protocol-level fake Dataverse Web API backed by the router's SQLite CRM schema (README.md)."""

from .server import FakeDataverse, Fault, Faults, Logged, RequestLog

__all__ = ["FakeDataverse", "Fault", "Faults", "Logged", "RequestLog"]
