"""#9.3: an instance's S3 key is limited to its bucket: the policy as data, the plan step."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path

import pytest

from envplane.backends.objects import s3_policy
from envplane.backends.objects.s3_identity import S3Identities, S3Key
from envplane.backends.objects.s3_policy import IdentityFacts
from envplane.errors import BackendError, UsageError
from envplane.plan import Observed, plan_up
from envplane.secret import Secret
from envplane.spec.load import load_project
from envplane.target import resolve

BUCKET = "finance-report-pr-5"


def test_the_policy_names_only_the_instance_s_bucket() -> None:
    assert s3_policy.policy_document(BUCKET) == {
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Action": ["s3:ListBucket", "s3:GetBucketLocation", "s3:GetObject", "s3:PutObject", "s3:DeleteObject",
                       "s3:GetObjectTagging", "s3:PutObjectTagging", "s3:DeleteObjectTagging",
                       "s3:AbortMultipartUpload"],
            "Resource": ["arn:aws:s3:::finance-report-pr-5", "arn:aws:s3:::finance-report-pr-5/*"],
        }],
    }
    assert s3_policy.parse_policy(s3_policy.policy_text(BUCKET)) == s3_policy.policy_document(BUCKET)
    assert s3_policy.user_name(BUCKET) == BUCKET


@pytest.mark.parametrize("bucket", ["*", "a/b", "x", "Finance", "app-*"])
def test_no_wildcard_or_odd_name_reaches_a_policy(bucket: str) -> None:
    with pytest.raises(UsageError, match="is not a bucket name"):
        s3_policy.policy_document(bucket)


def test_facts_say_ready_only_with_the_stored_key_alone_and_the_right_policy() -> None:
    right = s3_policy.policy_document(BUCKET)
    ready = IdentityFacts(BUCKET, True, ("AK1",), (s3_policy.POLICY_NAME,), right)
    assert ready.keys_observed("AK1") == {f"s3key:{BUCKET}"}
    assert ready.keys_observed("AK2") == frozenset()  # the store holds another key
    assert ready.keys_observed(None) == frozenset()
    two_keys = IdentityFacts(BUCKET, True, ("AK1", "AK9"), (s3_policy.POLICY_NAME,), right)
    assert two_keys.keys_observed("AK1") == frozenset()  # a key the instance made itself
    wider = IdentityFacts(BUCKET, True, ("AK1",), (s3_policy.POLICY_NAME, "extra"), right)
    assert not wider.policy_right() and wider.foreign_policies() == ("extra",)
    other = s3_policy.policy_document("finance-report-staging")
    assert not IdentityFacts(BUCKET, True, ("AK1",), (s3_policy.POLICY_NAME,), other).policy_right()
    assert IdentityFacts(BUCKET, False).keys_observed("AK1") == frozenset()


def test_a_key_prints_no_secret_and_round_trips_through_the_store() -> None:
    key = S3Key("AKIAEXAMPLE", Secret("very-secret"))
    assert "very-secret" not in repr(key) + str(key.as_secrets())
    assert S3Key.from_secrets(key.as_secrets()) == key
    assert S3Key.from_secrets({}) is None


def project(tmp_path: Path, service: str = "{uses: [s3]}"):  # type: ignore[no-untyped-def]
    (tmp_path / "compose.yaml").write_text("services:\n  web: {image: nginx}\n")
    (tmp_path / "envplane.yaml").write_text(
        f"app: shop\ndomain: example.com\ncompose: compose.yaml\nservices:\n  web: {service}\n"
        "resources:\n  s3: {}\n")
    return load_project(tmp_path / "envplane.yaml", {})


def test_plan_makes_the_instance_s_key_after_its_bucket(tmp_path: Path) -> None:
    target = resolve(project(tmp_path), "test", pr=5)
    steps = plan_up(target, tmp_path).steps
    kinds = [s.kind for s in steps]
    assert kinds.index("bucket") + 1 == kinds.index("s3key") < kinds.index("envfile")
    step = steps[kinds.index("s3key")]
    assert (step.action, step.description) == (
        "create", "create the instance's S3 key, limited to bucket shop-pr-5")
    seen = Observed(frozenset({"bucket:shop-pr-5", "s3key:shop-pr-5"}))
    again = plan_up(target, tmp_path, seen).steps[kinds.index("s3key")]
    assert (again.action, again.description) == (
        "noop", "the instance's S3 key exists, limited to bucket shop-pr-5")


def test_the_local_env_has_no_s3_key_step(tmp_path: Path) -> None:
    p = project(tmp_path, "{uses: [s3], dev: 'true'}")
    assert "s3key" not in [s.kind for s in plan_up(resolve(p, "local"), tmp_path).steps]


class NoIamServer(http.server.BaseHTTPRequestHandler):
    """A fake of an S3 server without an IAM API, answering as SeaweedFS with -s3.iam=false
    does (an empty 405, seen on the real one), named as such."""

    def do_POST(self) -> None:  # the http.server API names it
        self.send_response(405)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_a_server_without_an_iam_api_is_a_clear_error_and_purge_has_nothing_to_delete() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NoIamServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        users = S3Identities(f"http://127.0.0.1:{server.server_port}", "admin", Secret("admin-secret"))
        with pytest.raises(BackendError) as info:
            users.ensure(BUCKET, None)
        assert "has no IAM API" in info.value.message and "s3_app_access_key" in info.value.hint
        assert [(c.action, c.what) for c in users.purge(BUCKET)] == [("noop", f"S3 user {BUCKET}")]
    finally:
        server.shutdown()
