"""Per-instance S3 keys: one IAM user per instance, limited to its bucket (s3_policy).

envplane talks to the IAM API at the S3 endpoint with the admin key (SeaweedFS serves it
on its S3 port; writes need `-s3.iam.readOnly=false`). The admin key never leaves
envplane: containers get the instance's own key, which the caller keeps in the secret
store. Look first, then act: a second `ensure` with the stored key changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import boto3  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]
from botocore.parsers import ResponseParserError  # type: ignore[import-untyped]

from envplane.backends.database.change import Change, create, delete, noop, update
from envplane.backends.objects import s3_policy
from envplane.backends.objects.s3_policy import IdentityFacts
from envplane.errors import BackendError
from envplane.secret import Secret, mask

T = TypeVar("T")
_MISSING = {"NoSuchEntity", "NoSuchEntityException", "404"}
# What a server without an IAM API (MinIO, R2, a plain S3 endpoint) answers.
_NO_IAM = {"InvalidAction", "NotImplemented", "501", "MethodNotAllowed", "405", "InvalidRequest",
           "NoSuchBucket", "XNotImplemented"}
_NO_IAM_HINT = ("envplane gives each instance a key of its own through the IAM API (SeaweedFS has it); "
                "for other servers name a key per env: servers.s3_app_access_key "
                "(README, 'S3 keys per instance')")
_REFUSED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidClientTokenId", "403"}


class NoIamApi(BackendError):
    """The S3 server has no IAM API: envplane can have made no user there."""


@dataclass(frozen=True)
class S3Key:
    """An instance's access key; only the secret part is a Secret."""

    access_key_id: str
    secret_access_key: Secret

    def as_secrets(self) -> dict[str, Secret]:
        return {"access_key_id": Secret(self.access_key_id), "secret_access_key": self.secret_access_key}

    @classmethod
    def from_secrets(cls, stored: dict[str, Secret]) -> S3Key | None:
        key, secret = stored.get("access_key_id"), stored.get("secret_access_key")
        return cls(key.reveal(), secret) if key and secret else None


class S3Identities:
    def __init__(self, endpoint: str, access_key: str, secret_key: Secret, region: str = "us-east-1") -> None:
        self.endpoint = endpoint
        self.access_key = access_key
        self._secret_key = secret_key
        self._client: Any = boto3.client(
            "iam", endpoint_url=endpoint or None, aws_access_key_id=access_key,
            aws_secret_access_key=secret_key.reveal(), region_name=region,
            config=Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 2}),
        )

    def __repr__(self) -> str:
        return f"S3Identities(endpoint={self.endpoint!r}, access_key={self.access_key!r})"

    def observe(self, bucket: str) -> IdentityFacts:
        user = s3_policy.user_name(bucket)
        try:
            self._client.get_user(UserName=user)
        except ClientError as err:
            if _code(err) in _MISSING:
                return IdentityFacts(bucket, exists=False)
            raise self._error(f"look up S3 user {user}", err) from None
        except (BotoCoreError, ResponseParserError) as err:
            raise self._error(f"look up S3 user {user}", err) from None
        keys = self._call(f"list the keys of S3 user {user}",
                          lambda: self._client.list_access_keys(UserName=user))["AccessKeyMetadata"]
        names = self._call(f"list the policies of S3 user {user}",
                           lambda: self._client.list_user_policies(UserName=user))["PolicyNames"]
        policy = None
        if s3_policy.POLICY_NAME in names:
            answer = self._call(f"read the policy of S3 user {user}", lambda: self._client.get_user_policy(
                UserName=user, PolicyName=s3_policy.POLICY_NAME))
            policy = s3_policy.parse_policy(answer.get("PolicyDocument"))
        key_ids = tuple(sorted(k["AccessKeyId"] for k in keys))
        return IdentityFacts(bucket, True, key_ids, tuple(names), policy)

    def ensure(self, bucket: str, stored: S3Key | None) -> tuple[list[Change], S3Key]:
        """Make the instance's user, policy and one key; return the key to keep (stored or new).

        A key the server lists but the store lacks (a run killed between the two) is
        replaced: the server never shows a secret twice.
        """
        facts = self.observe(bucket)
        user = s3_policy.user_name(bucket)
        what = f"S3 user {user}"
        self._refuse_foreign(facts)
        done: list[str] = []
        if not facts.exists:
            self._call(f"create {what}", lambda: self._client.create_user(UserName=user))
        if not facts.policy_right():
            document = s3_policy.policy_text(bucket)
            self._call(f"limit {what} to bucket {bucket}", lambda: self._client.put_user_policy(
                UserName=user, PolicyName=s3_policy.POLICY_NAME, PolicyDocument=document))
            if facts.exists:
                done.append("policy reset to its bucket only")
        keep = stored.access_key_id if stored and stored.access_key_id in facts.access_keys else None
        extra = [k for k in facts.access_keys if k != keep]
        for key_id in extra:
            self._delete_key(user, key_id)
        if extra and facts.exists:
            done.append(f"{len(extra)} key(s) not in the secret store deleted")
        if stored is not None and keep is not None:
            key = stored
        else:
            made = self._call(f"create a key for {what}",
                              lambda: self._client.create_access_key(UserName=user))["AccessKey"]
            key = S3Key(made["AccessKeyId"], Secret(made["SecretAccessKey"]))
            if facts.exists:
                done.append("new key")
        if not facts.exists:
            return [create(what, f"missing; one key, limited to bucket {bucket}")], key
        if done:
            return [update(what, "; ".join(done))], key
        return [noop(what, f"{what} exists, limited to bucket {bucket}")], key

    def purge(self, bucket: str) -> list[Change]:
        user = s3_policy.user_name(bucket)
        what = f"S3 user {user}"
        try:
            facts = self.observe(bucket)
        except NoIamApi:  # nothing can have been made there: the bucket's purge is all
            return [noop(what, f"S3 at {self.endpoint} has no IAM API: no user to delete")]
        if not facts.exists:
            return [noop(what, f"{what} does not exist")]
        self._refuse_foreign(facts)
        # Keys and policies first: AWS refuses to delete a user that still has them.
        for key_id in facts.access_keys:
            self._delete_key(user, key_id)
        if s3_policy.POLICY_NAME in facts.policies:
            self._call(f"delete the policy of {what}", lambda: self._client.delete_user_policy(
                UserName=user, PolicyName=s3_policy.POLICY_NAME))
        self._call(f"delete {what}", lambda: self._client.delete_user(UserName=user))
        return [delete(what, f"user and {len(facts.access_keys)} key(s) deleted")]

    def _delete_key(self, user: str, key_id: str) -> None:
        self._call(f"delete key {key_id} of S3 user {user}",
                   lambda: self._client.delete_access_key(UserName=user, AccessKeyId=key_id))

    def _refuse_foreign(self, facts: IdentityFacts) -> None:
        """Touch only a user envplane made for this instance: never the admin, never one
        that carries policies of someone else's."""
        user = s3_policy.user_name(facts.bucket)
        if not facts.exists:
            return
        me = self._call("look up the admin key's user", lambda: self._client.get_user())["User"]["UserName"]
        foreign = facts.foreign_policies()
        if me == user or foreign:
            why = "it is the admin key's own user" if me == user else f"it has policies {', '.join(foreign)}"
            raise BackendError(
                f"S3 user {user} exists and was not made by envplane for this instance: {why}",
                "rename or remove that user by hand; envplane names each instance's user after its bucket",
            )

    # --- errors ---------------------------------------------------------------

    def _call(self, what: str, action: Callable[[], T]) -> T:
        try:
            return action()
        except (ClientError, BotoCoreError, ResponseParserError) as err:
            raise self._error(what, err) from None

    def _error(self, what: str, err: Exception) -> BackendError:
        detail = mask(str(err), [self._secret_key])
        if isinstance(err, ResponseParserError):  # e.g. SeaweedFS with -s3.iam=false: an empty body
            return NoIamApi(
                f"S3 at {self.endpoint} has no IAM API to {what} (its answer is not an IAM answer)",
                _NO_IAM_HINT,
            )
        if not isinstance(err, ClientError):
            return BackendError(f"cannot reach S3 at {self.endpoint} to {what}: {detail}",
                                "is the server running and ENVPLANE_S3_ENDPOINT right?")
        code = _code(err)
        message = str(err.response.get("Error", {}).get("Message", ""))
        if "write operations are disabled" in message:
            return BackendError(
                f"S3 at {self.endpoint} refused to {what}: its IAM API is read-only",
                "start SeaweedFS with -s3.iam.readOnly=false (envplane's platform and "
                "scripts/services/seaweedfs.sh do), so envplane can give each instance its own key",
            )
        if code in _NO_IAM:
            return NoIamApi(f"S3 at {self.endpoint} has no IAM API to {what} ({code})", _NO_IAM_HINT)
        if code in _REFUSED:
            return BackendError(
                f"S3 at {self.endpoint} refused to {what} for access key {self.access_key}: {code}",
                "the admin key (ENVPLANE_S3_ACCESS_KEY) must be allowed to manage IAM users",
            )
        said = mask(message, [self._secret_key])
        return BackendError(f"S3 at {self.endpoint} failed to {what}: {code} {said}", "")


def _code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))
