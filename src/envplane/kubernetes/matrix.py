"""The conversion matrix: which Compose service keys become what in Kubernetes, which are
left out on purpose, and which are refused. Pure. README's table says the same in prose
(a unit test keeps the two in step).

A key that is not in MAPPED or IGNORED is refused at plan time, naming the field with its
file and line: the cluster must not run something other than what the Compose file says.
Values of mapped keys that cannot map (a bind of a host folder, `build:` without `image:`,
`network_mode: host`) are refused where they are converted (pod.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from envplane.spec.source import FieldPath

MAPPED: Mapping[str, str] = {
    "image": "the container's image",
    "build": "nothing: the cluster pulls `image:`, which must be pushed first (refused without `image:`)",
    "command": "args",
    "entrypoint": "command",
    "environment": "env (a variable without a value comes from the shell at apply time, in a Secret)",
    "env_file": "a Secret made at apply time, envFrom",
    "ports": "containerPort and the Service's port (the host port is not used: the Ingress routes)",
    "expose": "containerPort and the Service's port",
    "volumes": "named volume: PersistentVolumeClaim; bind under ${DATA_PATH}: the instance's data claim "
    "(subPath); anonymous: emptyDir; tmpfs: emptyDir in memory",
    "tmpfs": "emptyDir in memory",
    "healthcheck": "readiness and liveness probes (exec), a startup probe for start_period",
    "deploy": "replicas, resources (limits and requests of cpu and memory), placement constraints "
    "(nodeSelector), labels (annotations)",
    "scale": "replicas",
    "working_dir": "workingDir",
    "user": "securityContext runAsUser / runAsGroup (numeric ids)",
    "hostname": "the pod's hostname",
    "stdin_open": "stdin",
    "tty": "tty",
    "read_only": "readOnlyRootFilesystem",
    "cap_add": "capabilities.add",
    "cap_drop": "capabilities.drop",
    "sysctls": "the pod's securityContext.sysctls",
    "group_add": "supplementalGroups (numeric ids)",
    "shm_size": "an in-memory emptyDir at /dev/shm",
    "extra_hosts": "hostAliases",
    "dns": "dnsConfig.nameservers (besides the cluster's DNS)",
    "dns_search": "dnsConfig.searches",
    "dns_opt": "dnsConfig.options",
    "labels": "pod annotations",
    "annotations": "pod annotations",
    "secrets": "a Secret per Compose secret, made at apply time from its file or variable, mounted at "
    "/run/secrets/NAME",
    "networks": "NetworkPolicies: pods on one Compose network reach each other; aliases: extra Services",
    "links": "an alias: an extra Service",
    "pull_policy": "imagePullPolicy",
    "cpus": "limits.cpu",
    "mem_limit": "limits.memory",
    "mem_reservation": "requests.memory",
    "platform": "nodeSelector kubernetes.io/os and kubernetes.io/arch",
    "stop_grace_period": "terminationGracePeriodSeconds",
}

IGNORED: Mapping[str, str] = {
    "container_name": "objects are named after the service, in the instance's namespace",
    "depends_on": "Kubernetes starts every pod at once; readiness probes gate traffic",
    "restart": "Deployments and StatefulSets always restart containers",
    "stop_signal": "Kubernetes stops containers with SIGTERM (a warning)",
    "init": "no init process is added (a warning)",
    "logging": "the cluster collects container output (a warning)",
    "profiles": "applied before converting",
    "extends": "applied before converting",
    "develop": "a development-time setting of `docker compose watch`",
    "attach": "a setting of `docker compose up` output",
}

REFUSED: Mapping[str, str] = {
    "network_mode": "a pod has its own network; `host` would share the node's (and `service:` another's)",
    "pid": "a pod has its own PID namespace; `host` would share the node's",
    "ipc": "a pod has its own IPC namespace",
    "uts": "a pod has its own UTS namespace",
    "userns_mode": "user namespaces are the cluster's setting",
    "privileged": "a privileged container owns the node",
    "security_opt": "seccomp and AppArmor profiles are the cluster's setting",
    "devices": "host devices are the node's",
    "device_cgroup_rules": "host devices are the node's",
    "gpus": "GPUs come from a device plugin's resources",
    "runtime": "the container runtime is a RuntimeClass of the cluster",
    "isolation": "a Windows container setting",
    "cgroup": "cgroups are the kubelet's",
    "cgroup_parent": "cgroups are the kubelet's",
    "ulimits": "Kubernetes sets no per-container ulimits",
    "oom_kill_disable": "the kubelet decides what the OOM killer takes",
    "oom_score_adj": "the kubelet sets OOM scores by QoS class",
    "pids_limit": "a pid limit is the kubelet's setting",
    "cpu_count": "use cpus (limits.cpu)",
    "cpu_percent": "use cpus (limits.cpu)",
    "cpu_shares": "use deploy.resources.reservations.cpus (requests.cpu)",
    "cpu_period": "use cpus (limits.cpu)",
    "cpu_quota": "use cpus (limits.cpu)",
    "cpu_rt_runtime": "real-time scheduling is the node's",
    "cpu_rt_period": "real-time scheduling is the node's",
    "cpuset": "CPU pinning is the kubelet's CPU manager",
    "blkio_config": "block IO weights are the node's",
    "mem_swappiness": "swap is the kubelet's setting",
    "memswap_limit": "swap is the kubelet's setting",
    "storage_opt": "storage options are the node's",
    "volumes_from": "pods share volumes by claim, not by container",
    "external_links": "containers outside the instance are not in its namespace",
    "mac_address": "pods get their addresses from the cluster",
    "domainname": "a pod's domain is the cluster's",
    "credential_spec": "a Windows container setting",
    "configs": "not mapped yet: mount the file from a Secret (`secrets:`) or bake it into the image",
    "post_start": "not mapped yet",
    "pre_stop": "not mapped yet",
    "use_api_socket": "the Docker engine's socket is the node's",
    "models": "not mapped",
    "provider": "not mapped",
}


# Values of refused keys that ask for what a pod has anyway.
HARMLESS: Mapping[str, tuple[Any, ...]] = {
    "network_mode": ("bridge", "default"),
    "ipc": ("private",),
    "privileged": (False,),
    "oom_kill_disable": (False,),
}
HINT = (
    "remove it, or put the service in a Compose profile that the envs on Kubernetes do not "
    "enable; README lists what maps"
)


def refused_keys(services: Mapping[str, Any], problem: Callable[[str, FieldPath, str, str], None]) -> None:
    """Every service key that does not map: `problem(service, path, message, hint)`."""
    for name, svc in services.items():
        for key in svc:
            if key in MAPPED or key in IGNORED or key.startswith("x-") or svc[key] in HARMLESS.get(key, ()):
                continue
            why = REFUSED.get(key, "unknown to the Kubernetes conversion")
            problem(name, (key,), f"{key} does not map to Kubernetes: {why}", HINT)
