"""One Compose service as a Kubernetes pod template. Pure: data in, data out.

The code that maps a field is also where a field that cannot map is refused: every
refusal is a Problem naming the field with its file and line (matrix.py lists them all,
README's table says why). Values are taken as loaded: interpolated, merged, normalised.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from envplane.compose.model import VolumeSyntaxError, parse_port, parse_volume
from envplane.kubernetes import quantities
from envplane.kubernetes.names import LABEL_NAME, SUBDOMAIN, dns_label, secret_name, volume_claim
from envplane.spec.source import FieldPath

HOSTNAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")  # a pod's hostname: a DNS-1123 label
DATA_CLAIM = "instance-data"  # the claim that stands for the instance's data path
SECRETS_DIR = "/run/secrets"  # where Compose mounts a service's secrets
# Healthcheck defaults of Docker: interval 30 s, timeout 30 s, 3 retries, start interval 5 s.
_INTERVAL, _TIMEOUT, _RETRIES, _START_INTERVAL = 30.0, 30.0, 3, 5.0
_PULL_POLICY = {
    "always": "Always",
    "never": "Never",
    "missing": "IfNotPresent",
    "if_not_present": "IfNotPresent",
}


@dataclass
class Pod:
    """What one service contributes: its pod spec, and what the instance must hold for it."""

    spec: dict[str, Any]
    ports: list[tuple[int, str]]  # (container port, TCP|UDP), in order, each once
    claims: dict[str, str] = field(default_factory=dict)  # claim name -> Compose volume (or DATA_CLAIM)
    secrets: list[str] = field(default_factory=list)  # Compose secret keys it mounts
    passthrough: list[str] = field(default_factory=list)  # variables Compose takes from the shell
    env_files: list[tuple[str, bool]] = field(default_factory=list)  # (absolute path, required)
    aliases: list[str] = field(default_factory=list)  # other names it answers to (network aliases)
    links: list[tuple[str, str]] = field(default_factory=list)  # (service, alias): `links: [db:database]`
    networks: list[str] = field(default_factory=list)
    replicas: int = 1
    annotations: dict[str, str] = field(default_factory=dict)  # the workload's (deploy.labels)


@dataclass
class PodBuilder:
    """Builds the Pod of one service; `problem` collects refusals with file and line."""

    name: str
    svc: Mapping[str, Any]
    data_path: str
    base_dir: str  # where relative paths of the Compose files start
    provided: tuple[str, ...]  # variables an env Secret gives (they must win over `environment`)
    envplane_env: Mapping[str, str]  # the ladder's variables and the spec's `env:`
    health_path: str | None
    public_port: int | None
    top: Mapping[str, Any]  # the whole Compose model (top-level volumes, secrets, networks)
    problem: Callable[[FieldPath, str, str], None]
    warn: Callable[[str], None]

    def build(self) -> Pod:
        svc = self.svc
        container: dict[str, Any] = {"name": self.name, "image": self._image()}
        pod: dict[str, Any] = {"containers": [container]}
        result = Pod(pod, self._ports())
        if svc.get("entrypoint") is not None:
            container["command"] = self._argv("entrypoint")
        if svc.get("command") is not None:
            container["args"] = self._argv("command")
        if svc.get("working_dir"):
            container["workingDir"] = str(svc["working_dir"])
        env, result.passthrough = self._env()
        if env:
            container["env"] = env
        result.env_files = self._env_files()
        if result.ports:
            container["ports"] = [{"containerPort": p, "protocol": proto} for p, proto in result.ports]
        self._pull_policy(container)
        resources = self._resources()
        if resources:
            container["resources"] = resources
        self._probes(container, result.ports)
        volumes = self._mounts(container, result)
        self._secrets(container, volumes, result)
        if volumes:
            pod["volumes"] = volumes
        self._security(container, pod)
        self._pod_fields(pod)
        result.replicas = self._replicas()
        result.annotations = self._annotations(("deploy", "labels"), (svc.get("deploy") or {}).get("labels"))
        result.networks, result.aliases = self._networks()
        result.links = [
            (t, a) for t, _, a in (str(link).partition(":") for link in svc.get("links") or []) if a
        ]
        return result

    # -- image and process -------------------------------------------------------------

    def _image(self) -> str:
        image = self.svc.get("image")
        if not image:
            self.problem(
                ("build",),
                "a service built from source has no image a cluster can pull",
                "add `image: registry.example.com/team/NAME:TAG` and push the built image there",
            )
            return "unset"
        if "build" in self.svc:
            self.warn(
                f"services.{self.name}: the cluster pulls {image}; build and push it first "
                "(Kubernetes builds nothing)"
            )
        return str(image)

    def _argv(self, key: str) -> list[str]:
        value = self.svc[key]
        if isinstance(value, str):
            try:
                words = shlex.split(value)
            except ValueError as exc:
                self.problem((key,), f"cannot split into words: {exc}", "write it as a list")
                return []
        else:
            words = [str(w) for w in value or []]
        return [escape(w) for w in words]

    def _pull_policy(self, container: dict[str, Any]) -> None:
        policy = self.svc.get("pull_policy")
        if policy is None:
            return
        mapped = _PULL_POLICY.get(str(policy))
        if mapped is None:
            self.problem(
                ("pull_policy",),
                f"pull_policy {policy} does not map to an imagePullPolicy",
                "use always, never, missing or if_not_present",
            )
            return
        container["imagePullPolicy"] = mapped

    def _env(self) -> tuple[list[dict[str, str]], list[str]]:
        """Compose's `environment` under envplane's variables; variables the env Secret gives
        are left to it. `KEY` without a value takes the shell's, at apply time (a Secret)."""
        declared: Mapping[str, str | None] = self.svc.get("environment") or {}
        values: dict[str, str] = {}
        passthrough = []
        for key, value in declared.items():
            if key in self.provided:
                continue
            if value is None:
                passthrough.append(key)
            else:
                values[key] = value
        values.update({k: v for k, v in self.envplane_env.items() if k not in self.provided})
        passthrough = [k for k in passthrough if k not in values]
        return [{"name": k, "value": escape(v)} for k, v in values.items()], passthrough

    def _env_files(self) -> list[tuple[str, bool]]:
        value = self.svc.get("env_file")
        items = value if isinstance(value, list) else [] if value is None else [value]
        found = []
        for item in items:
            path, required = (
                (item, True) if isinstance(item, str) else (item.get("path"), item.get("required", True))
            )
            found.append((posixpath.normpath(posixpath.join(self.base_dir, str(path))), bool(required)))
        return found

    # -- ports and probes --------------------------------------------------------------

    def _ports(self) -> list[tuple[int, str]]:
        found: list[tuple[int, str]] = []
        for key in ("ports", "expose"):
            for index, raw in enumerate(self.svc.get(key) or []):
                try:
                    mappings = parse_port(raw if key == "ports" else _expose(raw))
                except ValueError as exc:
                    self.problem((key, index), str(exc), "")
                    continue
                for m in mappings:
                    if m.protocol.lower() not in ("tcp", "udp", "sctp"):
                        self.problem((key, index), f"protocol {m.protocol} does not map", "use tcp or udp")
                        continue
                    item = (m.target, m.protocol.upper())
                    if item not in found:
                        found.append(item)
        if self.public_port is not None and (self.public_port, "TCP") not in found:
            found.append((self.public_port, "TCP"))
        return found

    def _probes(self, container: dict[str, Any], ports: list[tuple[int, str]]) -> None:
        check = self.svc.get("healthcheck")
        if isinstance(check, Mapping):
            probe = self._healthcheck(check)
            if probe is None:
                return
            container["readinessProbe"] = probe["probe"]
            container["livenessProbe"] = probe["probe"]
            if "startup" in probe:
                container["startupProbe"] = probe["startup"]
            return
        if self.health_path is None:
            return
        tcp = [p for p, proto in ports if proto == "TCP"]
        port = self.public_port if self.public_port is not None else (tcp[0] if tcp else None)
        if port is None:
            self.warn(
                f"services.{self.name}: health {self.health_path} is not probed: no container port "
                "(say `public: PORT` or `expose:` it)"
            )
            return
        http = {
            "httpGet": {"path": self.health_path, "port": port},
            "periodSeconds": 10,
            "timeoutSeconds": 3,
            "failureThreshold": 3,
        }
        container["readinessProbe"] = http
        container["livenessProbe"] = {**http, "failureThreshold": 6}

    def _healthcheck(self, check: Mapping[str, Any]) -> dict[str, dict[str, Any]] | None:
        test = check.get("test")
        if check.get("disable") is True or (isinstance(test, list) and test[:1] == ["NONE"]):
            return None
        if isinstance(test, str):
            command = ["/bin/sh", "-c", test]
        elif isinstance(test, list) and test[:1] == ["CMD-SHELL"] and len(test) == 2:
            command = ["/bin/sh", "-c", str(test[1])]
        elif isinstance(test, list) and test[:1] == ["CMD"] and len(test) > 1:
            command = [str(w) for w in test[1:]]
        else:
            self.problem(
                ("healthcheck", "test"),
                "a healthcheck test must be CMD, CMD-SHELL, NONE or a string",
                'write test: ["CMD", "curl", "-f", "http://localhost/"]',
            )
            return None
        times = {}
        for key, default in (
            ("interval", _INTERVAL),
            ("timeout", _TIMEOUT),
            ("start_period", 0.0),
            ("start_interval", _START_INTERVAL),
        ):
            value = quantities.seconds(check[key]) if key in check else default
            if value is None:
                self.problem(
                    ("healthcheck", key), f"{check[key]!r} is not a duration", "write e.g. 10s or 1m30s"
                )
                value = default
            times[key] = value
        retries = check.get("retries", _RETRIES)
        if not isinstance(retries, int) or isinstance(retries, bool) or retries < 1:
            self.problem(("healthcheck", "retries"), "must be a whole number of at least 1", "")
            retries = _RETRIES
        probe = {
            "exec": {"command": command},
            "periodSeconds": quantities.whole_seconds(times["interval"]),
            "timeoutSeconds": quantities.whole_seconds(times["timeout"]),
            "failureThreshold": retries,
        }
        found = {"probe": probe}
        if times["start_period"] > 0:
            # Compose ignores failures during start_period; a startup probe does, then hands over.
            period = quantities.whole_seconds(times["start_interval"])
            found["startup"] = {
                **probe,
                "periodSeconds": period,
                "failureThreshold": quantities.whole_seconds(times["start_period"] / period) + retries,
            }
        return found

    # -- resources ---------------------------------------------------------------------

    def _resources(self) -> dict[str, dict[str, str]]:
        deploy = self.svc.get("deploy") or {}
        given = deploy.get("resources") or {}
        out: dict[str, dict[str, str]] = {}
        for compose_key, k8s_key in (("limits", "limits"), ("reservations", "requests")):
            part = given.get(compose_key) or {}
            for key in part:
                if key not in ("cpus", "memory"):
                    self.problem(
                        ("deploy", "resources", compose_key, key),
                        f"{compose_key}.{key} does not map to a container resource",
                        "Kubernetes limits cpu and memory per container; remove it",
                    )
            if "cpus" in part:
                self._quantity(
                    out,
                    k8s_key,
                    "cpu",
                    quantities.cpus(part["cpus"]),
                    ("deploy", "resources", compose_key, "cpus"),
                )
            if "memory" in part:
                self._quantity(
                    out,
                    k8s_key,
                    "memory",
                    quantities.memory(part["memory"]),
                    ("deploy", "resources", compose_key, "memory"),
                )
        # The service-level forms Compose also reads; deploy.resources wins.
        for key, k8s_key, kind, parse in (
            ("cpus", "limits", "cpu", quantities.cpus),
            ("mem_limit", "limits", "memory", quantities.memory),
            ("mem_reservation", "requests", "memory", quantities.memory),
        ):
            if key in self.svc and kind not in out.get(k8s_key, {}):
                self._quantity(out, k8s_key, kind, parse(self.svc[key]), (key,))
        return out

    def _quantity(
        self, out: dict[str, dict[str, str]], part: str, kind: str, value: str | None, where: FieldPath
    ) -> None:
        if value is None:
            self.problem(where, "is not a positive size or CPU count", "write e.g. 0.5 (CPUs) or 512M")
            return
        out.setdefault(part, {})[kind] = value

    def _replicas(self) -> int:
        deploy = self.svc.get("deploy") or {}
        mode = deploy.get("mode", "replicated")
        if mode != "replicated":
            self.problem(
                ("deploy", "mode"),
                f"deploy mode {mode} does not map",
                "a DaemonSet per node is not what a Compose app expects; use replicas",
            )
        count = self.svc.get("scale", deploy.get("replicas", 1))
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            self.problem(
                ("scale",) if "scale" in self.svc else ("deploy", "replicas"), "must be a whole number", ""
            )
            return 1
        return count

    # -- volumes and secrets -----------------------------------------------------------

    def _mounts(self, container: dict[str, Any], pod: Pod) -> list[dict[str, Any]]:
        volumes: list[dict[str, Any]] = []
        mounts: list[dict[str, Any]] = []
        declared: Mapping[str, Any] = self.top.get("volumes") or {}

        def volume(name: str, source: dict[str, Any]) -> str:
            name = dns_label(name)
            if not any(v["name"] == name for v in volumes):
                volumes.append({"name": name, **source})
            return name

        for index, raw in enumerate(self.svc.get("volumes") or []):
            where: FieldPath = ("volumes", index)
            try:
                mount = parse_volume(raw)
            except VolumeSyntaxError:
                continue  # check_structure reported it already
            entry: dict[str, Any] = {"mountPath": mount.target}
            if mount.read_only:
                entry["readOnly"] = True
            if mount.kind == "volume":
                top = declared.get(mount.source) or {}
                if self._unmappable_volume(mount.source, top, where):
                    continue
                claim = volume_claim(mount.source)
                pod.claims[claim] = mount.source
                entry["name"] = volume(f"vol-{claim}", {"persistentVolumeClaim": {"claimName": claim}})
                subpath = (mount.long.get("volume") or {}).get("subpath")
                if subpath:
                    entry["subPath"] = str(subpath)
            elif mount.kind == "bind":
                relative = self._under_data_path(mount.source, where)
                if relative is None:
                    continue
                pod.claims[DATA_CLAIM] = DATA_CLAIM
                entry["name"] = volume(
                    f"vol-{DATA_CLAIM}", {"persistentVolumeClaim": {"claimName": DATA_CLAIM}}
                )
                if relative:
                    entry["subPath"] = relative
            elif mount.kind == "anonymous":
                entry["name"] = volume(f"tmp-{index}", {"emptyDir": {}})
            elif mount.kind == "tmpfs":
                size = (mount.long.get("tmpfs") or {}).get("size")
                entry["name"] = volume(
                    f"tmpfs-{index}", {"emptyDir": self._memory_dir(size, (*where, "tmpfs"))}
                )
            else:
                self.problem(
                    where,
                    f"a volume of type {mount.kind} does not map",
                    "use a named volume (a PersistentVolumeClaim) or tmpfs",
                )
                continue
            mounts.append(entry)
        tmpfs = self.svc.get("tmpfs")
        for index, item in enumerate([tmpfs] if isinstance(tmpfs, str) else tmpfs or []):
            path, _, options = str(item).partition(":")
            size = next((o.split("=", 1)[1] for o in options.split(",") if o.startswith("size=")), None)
            name = volume(f"tmpfs-svc-{index}", {"emptyDir": self._memory_dir(size, ("tmpfs", index))})
            mounts.append({"name": name, "mountPath": path})
        if self.svc.get("shm_size") is not None:
            name = volume("shm", {"emptyDir": self._memory_dir(self.svc["shm_size"], ("shm_size",))})
            mounts.append({"name": name, "mountPath": "/dev/shm"})
        if mounts:
            container["volumeMounts"] = mounts
        return volumes

    def _memory_dir(self, size: Any, where: FieldPath) -> dict[str, Any]:
        out: dict[str, Any] = {"medium": "Memory"}
        if size is not None:
            limit = quantities.memory(size)
            if limit is None:
                self.problem(where, f"{size!r} is not a size", "write e.g. 64m")
            else:
                out["sizeLimit"] = limit
        return out

    def _unmappable_volume(self, name: str, top: Mapping[str, Any], where: FieldPath) -> bool:
        if top.get("external"):
            self.problem(
                where,
                f"volume {name} is external: every instance would share it, and a "
                "PersistentVolumeClaim belongs to one namespace",
                "drop `external:` so each instance gets its own claim",
            )
            return True
        if top.get("driver") not in (None, "local") or top.get("driver_opts"):
            self.problem(
                where,
                f"volume {name} has a driver or driver_opts, which do not map",
                "Kubernetes volumes come from a StorageClass: set "
                "environments.<env>.kubernetes.storage_class",
            )
            return True
        return False

    def _under_data_path(self, source: str, where: FieldPath) -> str | None:
        """The bind's path inside the data path ('' for the data path itself), else None
        (refused: the cluster's nodes have neither the host's folders nor the app's files)."""
        path = source if source.startswith("~") else posixpath.normpath(posixpath.join(self.base_dir, source))
        if not source.startswith("~") and PurePosixPath(path).is_relative_to(PurePosixPath(self.data_path)):
            relative = str(PurePosixPath(path).relative_to(PurePosixPath(self.data_path)))
            return "" if relative == "." else relative
        if source.startswith(("/", "~")):
            self.problem(
                where,
                f"bind mount of the host folder {source} does not map: a pod runs on any node of the cluster",
                "keep the data under ${DATA_PATH} (a PersistentVolumeClaim per instance) or in a "
                "named volume",
            )
        else:
            self.problem(
                where,
                f"bind mount of the app's files {source} does not map: the cluster has no "
                "checkout of the app",
                "bake the files into the image (COPY in its Dockerfile)",
            )
        return None

    def _secrets(self, container: dict[str, Any], volumes: list[dict[str, Any]], pod: Pod) -> None:
        declared: Mapping[str, Any] = self.top.get("secrets") or {}
        mounts = container.setdefault("volumeMounts", [])
        for index, raw in enumerate(self.svc.get("secrets") or []):
            where: FieldPath = ("secrets", index)
            item = {"source": raw} if isinstance(raw, str) else dict(raw)
            source = str(item.get("source", ""))
            top = declared.get(source)
            if not isinstance(top, Mapping) or not (top.get("file") or top.get("environment")):
                why = (
                    "is external"
                    if isinstance(top, Mapping) and top.get("external")
                    else "has no file or environment"
                )
                self.problem(
                    where,
                    f"secret {source} {why}; envplane makes each instance's Secret from a file or a variable",
                    "give it `file:` or `environment:` under the top-level secrets",
                )
                continue
            for key in ("uid", "gid"):
                if key in item:
                    self.problem(
                        (*where, key),
                        f"secret {key} does not map (a Secret volume has no owner)",
                        "set the pod's fsGroup through the image's user instead; remove it",
                    )
            target = str(item.get("target") or source)
            path = target if target.startswith("/") else f"{SECRETS_DIR}/{target}"
            secret: dict[str, Any] = {"secretName": secret_name(source)}
            if "mode" in item:
                mode = item["mode"]
                secret["defaultMode"] = int(mode, 8) if isinstance(mode, str) else int(mode)
            name = f"secret-{index}"
            volumes.append({"name": name, "secret": secret})
            mounts.append({"name": name, "mountPath": path, "subPath": "value", "readOnly": True})
            if source not in pod.secrets:
                pod.secrets.append(source)
        if not mounts:
            container.pop("volumeMounts")

    # -- security and pod-level fields -------------------------------------------------

    def _security(self, container: dict[str, Any], pod: dict[str, Any]) -> None:
        svc = self.svc
        security: dict[str, Any] = {}
        user = svc.get("user")
        if user is not None:
            uid, _, gid = str(user).partition(":")
            ids = ["0" if uid == "root" else uid, "0" if gid == "root" else gid]
            if not ids[0].isdigit() or (gid and not ids[1].isdigit()):
                self.problem(
                    ("user",),
                    f"user {user} is a name; Kubernetes runs containers as a number",
                    'write the numeric uid[:gid], e.g. user: "1000:1000"',
                )
            else:
                security["runAsUser"] = int(ids[0])
                if gid:
                    security["runAsGroup"] = int(ids[1])
        if svc.get("read_only") is True:
            security["readOnlyRootFilesystem"] = True
        caps = {}
        for key, k8s_key in (("cap_add", "add"), ("cap_drop", "drop")):
            if svc.get(key):
                caps[k8s_key] = [str(c).upper().removeprefix("CAP_") for c in svc[key]]
        if caps:
            security["capabilities"] = caps
        if security:
            container["securityContext"] = security
        sysctls = svc.get("sysctls") or {}
        if sysctls:
            pod["securityContext"] = {"sysctls": [{"name": k, "value": str(v)} for k, v in sysctls.items()]}
        groups = svc.get("group_add")
        if groups:
            if all(str(g).isdigit() for g in groups):
                pod.setdefault("securityContext", {})["supplementalGroups"] = [int(g) for g in groups]
            else:
                self.problem(
                    ("group_add",),
                    "group names do not map; Kubernetes takes numeric group ids",
                    "write the group ids",
                )
        if svc.get("stdin_open") is True:
            container["stdin"] = True
        if svc.get("tty") is True:
            container["tty"] = True

    def _pod_fields(self, pod: dict[str, Any]) -> None:
        svc = self.svc
        hostname = svc.get("hostname")
        if hostname is not None:
            if HOSTNAME.match(str(hostname)):
                pod["hostname"] = str(hostname)
            else:
                self.problem(("hostname",), f"hostname {hostname} is not a DNS label", "use a-z, 0-9 and '-'")
        grace = svc.get("stop_grace_period")
        if grace is not None:
            found = quantities.seconds(grace)
            if found is None:
                self.problem(("stop_grace_period",), f"{grace!r} is not a duration", "write e.g. 30s")
            else:
                pod["terminationGracePeriodSeconds"] = quantities.whole_seconds(found, least=0)
        self._hosts(pod)
        self._dns(pod)
        selector = self._node_selector()
        if selector:
            pod["nodeSelector"] = selector
        annotations = {
            **self._annotations(("labels",), svc.get("labels")),
            **self._annotations(("annotations",), svc.get("annotations")),
        }
        if annotations:
            pod["__annotations__"] = annotations  # the template's metadata; convert.py moves it
        for key, why in (
            ("stop_signal", "Kubernetes stops containers with SIGTERM"),
            ("init", "Kubernetes runs no init process in the container"),
            ("logging", "the cluster collects container output itself"),
        ):
            if svc.get(key) not in (None, False):
                self.warn(f"services.{self.name}.{key} is ignored: {why}")
        restart = svc.get("restart")
        if restart not in (None, "always", "unless-stopped"):
            self.warn(
                f"services.{self.name}.restart: {restart} is ignored: a Deployment or StatefulSet "
                "always restarts its containers"
            )

    def _hosts(self, pod: dict[str, Any]) -> None:
        raw = self.svc.get("extra_hosts")
        pairs: list[tuple[str, str]] = []
        if isinstance(raw, Mapping):
            pairs = [(str(k), str(v)) for k, v in raw.items()]
        else:
            for item in raw or []:
                text = str(item)
                sep = "=" if "=" in text else ":"
                host, _, address = text.partition(sep)
                pairs.append((host, address.strip("[]")))
        aliases: dict[str, list[str]] = {}
        for host, address in pairs:
            if address == "host-gateway":
                self.problem(
                    ("extra_hosts",),
                    f"{host}:host-gateway does not map: a pod has no host gateway",
                    "reach host services by a name or address the cluster resolves",
                )
                continue
            aliases.setdefault(address, []).append(host)
        if aliases:
            pod["hostAliases"] = [{"ip": ip, "hostnames": names} for ip, names in aliases.items()]

    def _dns(self, pod: dict[str, Any]) -> None:
        config: dict[str, Any] = {}
        for key, k8s_key in (("dns", "nameservers"), ("dns_search", "searches")):
            value = self.svc.get(key)
            if value:
                config[k8s_key] = [str(v) for v in ([value] if isinstance(value, str) else value)]
        options = self.svc.get("dns_opt")
        if options:
            config["options"] = [
                {"name": n, **({"value": v} if sep else {})}
                for n, sep, v in (str(o).partition(":") for o in options)
            ]
        if config:
            pod["dnsConfig"] = (
                config  # added to the cluster's DNS (dnsPolicy ClusterFirst), so names still resolve
            )

    def _node_selector(self) -> dict[str, str]:
        selector: dict[str, str] = {}
        platform = self.svc.get("platform")
        if platform:
            parts = str(platform).split("/")
            if parts[0] != "linux" or len(parts) < 2:
                self.problem(
                    ("platform",), f"platform {platform} does not map", "use linux/ARCH, e.g. linux/amd64"
                )
            else:
                selector.update({"kubernetes.io/os": "linux", "kubernetes.io/arch": parts[1]})
        placement = (self.svc.get("deploy") or {}).get("placement") or {}
        for key in placement:
            if key != "constraints":
                self.problem(
                    ("deploy", "placement", key),
                    f"placement {key} does not map",
                    "use constraints node.labels.KEY==VALUE or node.hostname==NAME",
                )
        for index, raw in enumerate(placement.get("constraints") or []):
            left, sep, right = str(raw).replace(" ", "").partition("==")
            key = left.removeprefix("node.labels.")
            prefix, _, name = key.rpartition("/")
            if sep and key != left and LABEL_NAME.match(name) and (not prefix or SUBDOMAIN.match(prefix)):
                selector[key] = right
            elif sep and left == "node.hostname":
                selector["kubernetes.io/hostname"] = right
            else:
                self.problem(
                    ("deploy", "placement", "constraints", index),
                    f"constraint {raw} does not map",
                    "use node.labels.KEY==VALUE or node.hostname==NAME (a nodeSelector)",
                )
        return selector

    def _annotations(self, where: FieldPath, raw: Any) -> dict[str, str]:
        """Compose labels and annotations as annotations (any value may stand there); a key
        that is not a Kubernetes name is left out, with a warning."""
        if not raw:
            return {}
        items = raw.items() if isinstance(raw, Mapping) else (str(i).partition("=")[::2] for i in raw)
        out = {}
        for key, value in items:
            prefix, _, name = str(key).rpartition("/")
            if LABEL_NAME.match(name) and (not prefix or SUBDOMAIN.match(prefix)):
                out[str(key)] = "" if value is None else str(value)
            else:
                self.warn(
                    f"services.{self.name}.{'.'.join(map(str, where))}: {key} is not a Kubernetes "
                    "annotation name; left out"
                )
        return out

    def _networks(self) -> tuple[list[str], list[str]]:
        declared: Mapping[str, Any] = self.top.get("networks") or {}
        attached: Mapping[str, Any] = self.svc.get("networks") or {"default": None}
        aliases: list[str] = []
        for network, options in attached.items():
            if (declared.get(network) or {}).get("external"):
                self.problem(
                    ("networks", network),
                    f"network {network} is external: instances would share it",
                    "drop `external:`; every instance gets its own namespace",
                )
            for key in options or {}:
                if key == "aliases":
                    aliases += [str(a) for a in options[key] or []]
                elif key not in ("priority", "gw_priority"):
                    self.problem(
                        ("networks", network, key),
                        f"networks.{network}.{key} does not map: pods get their addresses from the cluster",
                        "remove it",
                    )
        return list(attached), list(dict.fromkeys(aliases))


def escape(value: str) -> str:
    """Kubernetes expands $(VAR) in a container's command, args and env values, and reads
    $$ as $: double every $, so values reach the process as Compose passes them."""
    return value.replace("$", "$$")


def _expose(value: Any) -> Any:
    """`expose: ["3000", "8000-8001", "53/udp"]`: container ports, published nowhere."""
    return value if isinstance(value, int) else str(value)
