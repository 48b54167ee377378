"""The operations every interface calls: the CLI and the webhook today, an HTTP API, the
dashboard and an MCP server later (DESIGN.md, "Layout").

Each operation takes a `report` callback that hears its progress as plain, JSON-able
events (envplane.events: steps started and finished with their timing, what a step waits
on, log lines, notes) and returns plain data. None prints, none installs a signal handler:
the interfaces parse, call and format, and re-implement no rule.
"""
