"""The state store: instances, deployments, the audit log and instance locks.

SQLite at `{spec_dir}/.envplane/state.db` by default, PostgreSQL when a URL is given.
Nothing outside this package talks SQL.
"""
