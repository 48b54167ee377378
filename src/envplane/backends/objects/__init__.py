"""Per-instance object stores: a bucket on an S3 server, or a folder on disk."""
