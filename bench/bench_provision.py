"""Provisioning a fresh instance (password, role + database, bucket and its own S3 key, Redis
user) and purging
it, on the real servers of scripts/services. Prints medians; asserts nothing.

Usage: eval the export lines of scripts/services/{postgres,seaweedfs,redis}.sh, then
       .venv/bin/python bench/bench_provision.py [RUNS]
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from envplane.backends.secrets import open_secret_store
from envplane.provision import Provisioner, Servers
from envplane.spec.load import load_project
from envplane.target import resolve


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    environ = {
        "ENVPLANE_POSTGRES_URL": os.environ["ENVPLANE_TEST_POSTGRES_URL"],
        "ENVPLANE_S3_ENDPOINT": os.environ["ENVPLANE_TEST_S3_ENDPOINT"],
        "ENVPLANE_S3_ACCESS_KEY": os.environ["ENVPLANE_TEST_S3_ACCESS_KEY"],
        "ENVPLANE_S3_SECRET_KEY": os.environ["ENVPLANE_TEST_S3_SECRET_KEY"],
        "ENVPLANE_REDIS_URL": os.environ["ENVPLANE_TEST_REDIS_URL"],
    }
    ensure, again, purge = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "compose.yaml").write_text("services:\n  web:\n    image: busybox\n")
        (root / "envplane.yaml").write_text(
            f"app: bp{uuid.uuid4().hex[:6]}\ndomain: example.com\ncompose: compose.yaml\n"
            "services:\n  web:\n    uses: [postgres, s3, redis]\n"
            "resources:\n  postgres: {}\n  s3: {}\n  redis: {}\n")
        project = load_project(root / "envplane.yaml", {})
        # The store's key file goes under the bench's own folder, not the user's config.
        store = open_secret_store("file", root, {"XDG_CONFIG_HOME": str(root / "config")}, project.app)
        for pr in range(1, runs + 1):
            target = resolve(project, "test", pr=pr)
            p = Provisioner(target, Servers.from_environ(environ), store, root)
            start = time.perf_counter()
            p.password("postgres")
            p.password("redis")
            p.database()
            p.bucket()
            p.s3_key()
            p.cache()
            ensure.append(time.perf_counter() - start)
            start = time.perf_counter()
            p2 = Provisioner(target, Servers.from_environ(environ), store, root)
            p2.database()
            p2.bucket()
            p2.s3_key()
            p2.cache()
            again.append(time.perf_counter() - start)
            start = time.perf_counter()
            Provisioner(target, Servers.from_environ(environ), store, root).purge()
            purge.append(time.perf_counter() - start)
    for label, times in (("provision a fresh instance (all resources)", ensure),
                         ("provision again (all no-ops)", again), ("purge an instance", purge)):
        print(f"{label}: median {statistics.median(times) * 1000:.0f} ms "
              f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f}, n={len(times)})")


if __name__ == "__main__":
    main()
