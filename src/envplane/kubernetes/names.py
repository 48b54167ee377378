"""How an instance's Kubernetes objects are named and labelled. Pure string rules.

One namespace per instance holds every object of it, so the objects themselves keep the
Compose names (`db`, `backend`): a service still reaches `db:5432` by its name.
"""

from __future__ import annotations

import hashlib
import re

from envplane.names import Instance

LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")  # DNS-1035: Service names
SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")  # DNS-1123 subdomain
LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")  # a label key's name
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
FIELD_MANAGER = "envplane"
LABEL_SERVICE = "envplane.service"
LABEL_VOLUME = "envplane.volume"
NETWORK_PREFIX = "network.envplane"  # label key prefix: pods on Compose network N


def namespace(app: str, instance: Instance) -> str:
    """`{app}-{env}`, `{app}-{env}-pr-{N}`, `{app}-{env}-{run}`: unique per instance by
    construction (env names are unique, and a PR or run number within an env). A name
    over 63 characters, Kubernetes' limit, is cut and ends in a hash of the whole."""
    tail = f"-pr-{instance.pr}" if instance.pr is not None else f"-{instance.run}" if instance.run else ""
    return dns_label(f"{app}-{instance.env}{tail}")


def dns_label(raw: str, limit: int = 63) -> str:
    """`raw` as a DNS-1123 label: kept when it is one, else cleaned and given a hash of `raw`
    (so two raw names never clean to one)."""
    if len(raw) <= limit and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", raw):
        return raw
    cleaned = re.sub(r"[^a-z0-9]+", "-", raw.lower()).strip("-")
    digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
    return f"{cleaned[: limit - 9].strip('-')}-{digest}".lstrip("-")


def label_value(raw: str) -> str:
    """A label value (63 characters of a-z, A-Z, 0-9, '-', '_', '.', alphanumeric at both
    ends); an id that is not one already is cleaned and given a hash."""
    if LABEL_VALUE.match(raw):
        return raw
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", raw).strip("-_.")
    digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
    return f"{cleaned[:54].strip('-_.')}-{digest}".lstrip("-_.")


def network_label(network: str) -> str:
    """The pod label that says a pod is on Compose network `network` (NetworkPolicies
    select by it): `network.envplane/backnet`."""
    name = network if LABEL_NAME.match(network) else label_value(network)
    return f"{NETWORK_PREFIX}/{name}"


def volume_claim(volume: str) -> str:
    """A Compose volume key as a PersistentVolumeClaim name: `db_data` -> `db-data`."""
    return dns_label(volume.replace("_", "-").lower()) if not SUBDOMAIN.match(volume) else volume


def secret_name(compose_secret: str) -> str:
    """The Secret that holds a Compose `secrets:` entry: `db_password` -> `db-password-secret`
    (never an env Secret's name: those end in `-env`)."""
    return dns_label(f"{compose_secret.replace('_', '-').lower()}-secret")


def env_secret(service: str) -> str:
    """The Secret that holds a service's env-file variables (resources, secrets, env_file)."""
    return f"{service}-env"
