"""Routing: the incoming and outgoing batch engines, their ledgers, quarantine and results."""

from emailrouter_lib.routing.incoming import run
from emailrouter_lib.routing.outgoing import OutgoingRow, run_outgoing
from emailrouter_lib.routing.params import RoutingParams
from emailrouter_lib.routing.result import RoutingResult

__all__ = ["OutgoingRow", "RoutingParams", "RoutingResult", "run", "run_outgoing"]
