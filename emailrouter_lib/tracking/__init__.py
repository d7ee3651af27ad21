"""Correlation and resolution: tracking tokens, Thread-Index, party resolution, incoming filters.

Pure decisions over a parsed message and what the CRM returned for it; the routing engine does the
batched CRM look-ups and hands the answers in, so nothing here talks to a server.
"""
