"""#11: one command makes one S3 client per server and key, not one per step.

An `up` of an app with a bucket asks for the S3 server in its pre-flight, for the bucket,
the instance's key and its purge; each boto3 client costs ~65 ms of CPU to make. The
clients make no request when made, so this needs no server."""

from __future__ import annotations

from typing import cast

from envplane.provision import Servers, s3_identities, s3_server
from envplane.secret import Secret
from envplane.target import Target

NO_TARGET = cast(Target, None)  # read only to name a missing server in an error


def test_the_same_server_and_key_give_the_same_client_and_another_key_another() -> None:
    servers = Servers(s3_endpoint="http://127.0.0.1:1", s3_access_key="admin", s3_secret_key=Secret("one"))
    again = Servers(s3_endpoint="http://127.0.0.1:1", s3_access_key="admin", s3_secret_key=Secret("one"))
    other = Servers(s3_endpoint="http://127.0.0.1:1", s3_access_key="admin", s3_secret_key=Secret("two"))
    target = NO_TARGET
    assert s3_server(target, servers) is s3_server(target, again)
    assert s3_server(target, servers) is not s3_server(target, other)
    assert s3_identities(target, servers) is s3_identities(target, again)
    assert s3_identities(target, servers) is not s3_identities(target, other)
