"""What of a Compose file maps to a Swarm stack, and what is refused at plan time. Pure.

The docker CLI validates a stack file against its own schema (v3.13) and ignores what
Swarm cannot run; envplane refuses both kinds before anything runs, naming the field with
its file and line, so a stack never runs something other than what the Compose file says.
README's Swarm section sums them up in prose; this module is the full list, each with its reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from envplane.compose.model import VolumeSyntaxError, parse_volume
from envplane.errors import Problem
from envplane.spec.load import Project
from envplane.spec.models import Spec, SwarmServiceSpec
from envplane.target import Target

MAPPED: Mapping[str, str] = {
    "image": "the service's image (a digest with a registry)",
    "build": "built on this machine, then sent to every node (or pushed to the registry)",
    "command": "the service's command",
    "entrypoint": "the service's entrypoint",
    "environment": "the service's environment (envplane's credentials come as a Docker secret)",
    "env_file": "read by the docker CLI into the service's environment",
    "ports": "host-mode published ports on each node that runs a task (no routing mesh)",
    "volumes": "named volumes per instance, local to each node; binds must exist on every node",
    "tmpfs": "tmpfs mounts",
    "healthcheck": "the task's healthcheck: Swarm counts a task as running once it is healthy",
    "deploy": "replicas, resources, placement, restart_policy, labels (envplane sets update_config, "
    "rollback_config and endpoint_mode)",
    "scale": "replicas",
    "networks": "overlay networks per instance",
    "secrets": "Docker secrets per instance, named by their content",
    "configs": "Docker configs per instance, named by their content",
    "labels": "container labels",
    "init": "an init process",
    "user": "user",
    "working_dir": "working directory",
    "hostname": "hostname",
    "dns": "dns",
    "dns_search": "dns_search",
    "extra_hosts": "extra_hosts",
    "cap_add": "capabilities",
    "cap_drop": "capabilities",
    "sysctls": "sysctls",
    "ulimits": "ulimits",
    "read_only": "read-only root file system",
    "stop_grace_period": "stop grace period",
    "stop_signal": "stop signal",
    "logging": "log driver",
    "stdin_open": "stdin_open",
    "tty": "tty",
    "oom_score_adj": "oom_score_adj",
}

IGNORED: Mapping[str, str] = {
    "container_name": "Swarm names each task after its service and slot",
    "depends_on": "Swarm starts services in no order: a service must retry what it needs",
    "restart": "Swarm restarts tasks (deploy.restart_policy)",
    "expose": "services on one overlay network reach each other on any port",
    "pull_policy": "nodes use the image sent to them, or pull the registry's digest",
    "profiles": "applied before rendering",
    "extends": "applied before rendering",
    "develop": "a setting of `docker compose watch`",
    "attach": "a setting of `docker compose up` output",
}

REFUSED: Mapping[str, str] = {
    "network_mode": "a task is on its stack's overlay networks; `host` or `service:` do not map",
    "pid": "a task has its own PID namespace",
    "ipc": "a task has its own IPC namespace",
    "uts": "a task has its own UTS namespace",
    "userns_mode": "user namespaces are the node's setting",
    "privileged": "Swarm services cannot be privileged",
    "security_opt": "Swarm services take no security options",
    "devices": "Swarm services take no host devices",
    "device_cgroup_rules": "Swarm services take no host devices",
    "gpus": "use deploy.resources.reservations.generic_resources on the nodes",
    "runtime": "Swarm services use the node's default runtime",
    "cgroup": "cgroups are the node's",
    "cgroup_parent": "cgroups are the node's",
    "cgroupns_mode": "cgroups are the node's",
    "shm_size": "Swarm services take no shm size (mount a tmpfs at /dev/shm)",
    "links": "services on one overlay network reach each other by name",
    "external_links": "containers outside the stack are not on its networks",
    "volumes_from": "tasks share named volumes, not containers",
    "mac_address": "tasks get their addresses from the overlay network",
    "domainname": "Swarm services take no domain name",
    "mem_limit": "use deploy.resources.limits.memory",
    "memswap_limit": "use deploy.resources.limits.memory",
    "mem_reservation": "use deploy.resources.reservations.memory",
    "cpus": "use deploy.resources.limits.cpus",
    "cpu_shares": "use deploy.resources.reservations.cpus",
    "cpu_count": "use deploy.resources.limits.cpus",
    "cpu_percent": "use deploy.resources.limits.cpus",
    "cpu_period": "use deploy.resources.limits.cpus",
    "cpu_quota": "use deploy.resources.limits.cpus",
    "cpu_rt_runtime": "real-time scheduling is the node's",
    "cpu_rt_period": "real-time scheduling is the node's",
    "cpuset": "CPU pinning is the node's",
    "pids_limit": "Swarm services take no pid limit on this engine (API 1.41)",
    "blkio_config": "block IO weights are the node's",
    "mem_swappiness": "swap is the node's setting",
    "oom_kill_disable": "the node decides what the OOM killer takes",
    "storage_opt": "storage options are the node's",
    "group_add": "Swarm services take no extra groups on this engine (API 1.41)",
    "platform": "use a placement constraint: node.platform.os / node.platform.arch",
    "isolation": "a Windows container setting",
    "credential_spec": "a Windows container setting",
    "annotations": "Swarm services take no annotations",
    "dns_opt": "the stack file has no dns_opt",
    "post_start": "not mapped",
    "pre_stop": "not mapped",
    "use_api_socket": "the engine's socket is the node's",
    "models": "not mapped",
    "provider": "not mapped",
}

# Values of refused keys that ask for what a task has anyway.
HARMLESS: Mapping[str, tuple[Any, ...]] = {"network_mode": ("bridge", "default"), "ipc": ("private",),
                                           "privileged": (False,), "oom_kill_disable": (False,)}
HINT = ("remove it, or put the service in a Compose profile that the envs on Swarm do not enable; "
        "README (Swarm) lists what maps")

NETWORK_KEYS = frozenset({"driver", "driver_opts", "external", "internal", "ipam", "labels", "name",
                          "attachable"})
VOLUME_KEYS = frozenset({"driver", "driver_opts", "external", "labels", "name"})
FILE_KEYS = frozenset({"file", "external", "name", "labels"})  # secrets and configs
DEPLOY_OWN = ("update_config", "rollback_config", "endpoint_mode")  # envplane sets these
MOUNT_KEYS = frozenset({"type", "source", "target", "read_only", "consistency", "bind", "volume", "tmpfs"})


def problems(project: Project, target: Target) -> list[Problem]:
    """Everything of the instance that a stack cannot run, each with its file and line."""
    compose = target.compose
    found: list[Problem] = []
    for name, svc in compose.services.items():
        at = ("services", name)
        for key, value in svc.items():
            if key in MAPPED or key in IGNORED or key.startswith("x-") or value in HARMLESS.get(key, ()):
                continue
            why = REFUSED.get(key, "unknown to the stack file (docker stack deploy)")
            found.append(compose.problem((*at, key), f"{key} does not map to Swarm: {why}", HINT))
        found += _mounts(target, name, svc)
        if (svc.get("deploy") or {}).get("mode") == "global":
            found.append(compose.problem((*at, "deploy", "mode"), "deploy.mode global is not supported on "
                                         "runtime swarm", "give replicas (services.<name>.swarm.replicas)"))
    for plan in (p for s in target.services for p in s.ports):
        if plan.host_ip:
            found.append(compose.problem(("services", plan.service, "ports", plan.index),
                                         "a port bound to one host address does not map to Swarm "
                                         f"({plan.host_ip}): a task's ports listen on every address "
                                         "of its node", "drop the address from the port"))
    for kind, allowed in (("networks", NETWORK_KEYS), ("volumes", VOLUME_KEYS), ("secrets", FILE_KEYS),
                          ("configs", FILE_KEYS)):
        for key, value in (compose.data.get(kind) or {}).items():
            for field in value or {}:
                if field not in allowed and not str(field).startswith("x-"):
                    found.append(compose.problem((kind, key, field), f"{kind}.{key}.{field} does not map "
                                                 "to Swarm", "Swarm takes " + ", ".join(sorted(allowed))))
            if kind in ("secrets", "configs") and not (value or {}).get("file") \
                    and not (value or {}).get("external"):
                found.append(compose.problem((kind, key), f"{kind}.{key} needs `file:` (or `external:`) "
                                             "on Swarm", "point it at a file beside the Compose file"))
    found += _spec_problems(project, target)
    return found


def _mounts(target: Target, name: str, svc: Mapping[str, Any]) -> list[Problem]:
    out = []
    for index, raw in enumerate(svc.get("volumes") or []):
        if isinstance(raw, Mapping):
            for key in raw:
                if key not in MOUNT_KEYS:
                    out.append(target.compose.problem(("services", name, "volumes", index, key),
                                                      f"the mount option {key} does not map to Swarm", HINT))
            for key, allowed in (("bind", {"propagation"}), ("volume", {"nocopy"}), ("tmpfs", {"size"})):
                for sub in raw.get(key) or {}:
                    if sub not in allowed:
                        out.append(target.compose.problem(("services", name, "volumes", index, key, sub),
                                                          f"the mount option {key}.{sub} does not map "
                                                          "to Swarm", HINT))
            continue
        try:
            parse_volume(raw)
        except VolumeSyntaxError:
            continue  # check_structure reported it already
    return out


def replicas(spec: Spec, target: Target, name: str) -> int:
    """The replicas a service runs: envplane.yaml's, else the Compose file's, else one."""
    own = swarm_spec(spec, name)
    if own is not None and own.replicas is not None:
        return own.replicas
    svc = target.compose.services.get(name) or {}
    for value in ((svc.get("deploy") or {}).get("replicas"), svc.get("scale")):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return 1


def swarm_spec(spec: Spec, name: str) -> SwarmServiceSpec | None:
    """services.<name>.swarm of envplane.yaml (None when it says nothing)."""
    service = spec.services.get(name)
    return service.swarm if service is not None else None


def _spec_problems(project: Project, target: Target) -> list[Problem]:
    """A stateful service runs once (its volumes are on one node); hooks need a one-off
    container, which a stack has not."""
    doc = project.doc
    found = []
    for service in target.services:
        count = replicas(project.spec, target, service.name)
        if service.stateful and count > 1:
            own = swarm_spec(project.spec, service.name)
            if own is not None and own.replicas is not None:
                found.append(doc.problem(("services", service.name, "swarm", "replicas"),
                                         f"{service.name} holds data ({service.stateful_reason}): it runs "
                                         f"once, pinned to one node, not {count} times",
                                         "set replicas: 1, or `stateful: false` if its data lives elsewhere"))
            else:
                where = ("services", service.name, "deploy", "replicas") \
                    if (target.compose.services[service.name].get("deploy") or {}).get("replicas") \
                    else ("services", service.name, "scale")
                found.append(target.compose.problem(where, f"{service.name} holds data "
                                                    f"({service.stateful_reason}): on Swarm it runs once, "
                                                    "pinned to one node", "run one replica"))
    for hook in project.spec.hooks:
        found.append(doc.problem(("hooks", hook), f"hooks do not run on runtime swarm yet (env "
                                 f"{target.env.name})", "run the command in the service's image at start, "
                                 "or keep this env on compose"))
    return found
