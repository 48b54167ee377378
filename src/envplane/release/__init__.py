"""Releases and promotion (issue 5).

Pure: `versions` (the next version), `reports` (what gates read), `gates` (the decisions),
`colours` (a blue-green colour of a target), `probe.percentile`. With side effects:
`images` (build, tag, inspect), `probe.measure`, `bluegreen` (start, switch, stop a
colour) and `flow` (release, promote, approve, rollback with locks, state and audit).
"""
