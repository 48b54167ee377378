"""An instance's own S3 identity as data: its user name, the one policy that limits it to
its bucket, and what differs from that on a server. Pure: nothing here connects.

The policy is AWS IAM's format, which SeaweedFS's IAM API reads too (it maps each action
onto its Read/Write/List/Tagging on the named bucket only).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from envplane.backends.objects.names import check_bucket

POLICY_NAME = "envplane-bucket"
# What an application does with its own bucket; nothing on any other bucket, no bucket
# creation or deletion, no bucket policy (which could open the bucket to anyone).
ACTIONS = (
    "s3:ListBucket", "s3:GetBucketLocation", "s3:GetObject", "s3:PutObject", "s3:DeleteObject",
    "s3:GetObjectTagging", "s3:PutObjectTagging", "s3:DeleteObjectTagging", "s3:AbortMultipartUpload",
)


def user_name(bucket: str) -> str:
    """The instance's S3 user is named like its bucket (unique per instance on a server)."""
    return check_bucket(bucket)


def policy_document(bucket: str) -> dict[str, Any]:
    check_bucket(bucket)
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Action": list(ACTIONS),
            "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
        }],
    }


def policy_text(bucket: str) -> str:
    return json.dumps(policy_document(bucket), separators=(",", ":"))


@dataclass(frozen=True)
class IdentityFacts:
    bucket: str
    exists: bool
    access_keys: tuple[str, ...] = ()  # ids only: a server never shows a secret again
    policies: tuple[str, ...] = ()  # inline policy names
    policy: dict[str, Any] | None = None  # the document of POLICY_NAME, when there is one

    def foreign_policies(self) -> tuple[str, ...]:
        return tuple(p for p in self.policies if p != POLICY_NAME)

    def policy_right(self) -> bool:
        return self.policy == policy_document(self.bucket) and not self.foreign_policies()

    def keys_observed(self, stored_key: str | None) -> frozenset[str]:
        """`s3key:{bucket}` (plan.Observed) when nothing is left to do for the identity."""
        ready = self.exists and self.policy_right() and stored_key is not None \
            and self.access_keys == (stored_key,)
        return frozenset({f"s3key:{self.bucket}"} if ready else set())


def parse_policy(document: Any) -> dict[str, Any] | None:
    """GetUserPolicy answers the document as JSON text (URL-decoded by boto3) or a mapping."""
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except json.JSONDecodeError:
            return None
    return document if isinstance(document, dict) else None
