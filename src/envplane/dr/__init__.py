"""Disaster recovery (issue 13): encrypted streamed backups, restores, retention, drills, PITR."""
