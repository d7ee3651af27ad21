"""Routing: the incoming batch engine, its exactly-once ledger, quarantine and results."""

from emailrouter_lib.routing.incoming import run
from emailrouter_lib.routing.params import RoutingParams
from emailrouter_lib.routing.result import RoutingResult

__all__ = ["RoutingParams", "RoutingResult", "run"]
