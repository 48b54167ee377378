"""Per-instance caches: a Redis ACL user limited to the instance's key prefix."""
