"""The platform layer (seed 000 §3.4): PostgreSQL, Redis and an S3 server per env, run by
envplane as an app of its own (`platform-postgres-staging`, data in /data/platform/staging).
Apps of an env with no server configured are provisioned on that env's platform.
"""
