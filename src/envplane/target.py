"""resolve(project, env, instance) -> Target: every concrete name of one env instance.

Pure: it reads nothing from disk and nothing from the process environment; the
Project carries the files' text and the environ snapshot it was loaded with.
"""

from __future__ import annotations

import posixpath
import re
from collections import ChainMap
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath
from types import MappingProxyType
from typing import Any

from envplane.compose.interpolate import InterpolationError, substitute, unset_warning
from envplane.compose.load import build_model
from envplane.compose.merge import ComposeModel
from envplane.compose.model import VolumeSyntaxError, parse_port, parse_volume
from envplane.datapath import RULE_HINT, not_owned
from envplane.errors import Problem, SpecError, UsageError
from envplane.hosts.config import engine_for
from envplane.hosts.engine import LOCAL, Engine
from envplane.names import Instance, bucket_name, container_name, fill, run_id, sql_identifier
from envplane.ports import PortError, PortPlan, PortRequest, assign, published_port
from envplane.release.stateful import classify
from envplane.spec.ladder import EnvConfig
from envplane.spec.load import Project, is_credential
from envplane.spec.models import PublicRoute, Resources, ServiceSpec

LABEL_APP = "envplane.app"
LABEL_ENV = "envplane.env"
LABEL_INSTANCE = "envplane.instance"
LABEL_SERVICE = "envplane.service"


@dataclass(frozen=True)
class ServiceTarget:
    name: str
    container_name: str | None  # None when the service scales (replicas > 1)
    ports: tuple[PortPlan, ...]
    public: PublicRoute | None
    url: str | None
    health: str | None
    dev: str | None
    dev_cwd: str | None
    uses: tuple[str, ...]
    secrets: tuple[str, ...]  # names of user secrets the service needs (`envplane secrets set`)
    provided: tuple[str, ...]  # variables envplane supplies from resources and secrets
    secret_path: str
    env: Mapping[str, str]
    # Holds data (release/stateful.py): runs once per instance, never per blue-green colour.
    stateful: bool = False
    stateful_reason: str = ""

    @property
    def public_host_port(self) -> int | None:
        """The host port the public container port is published on, if it is."""
        return published_port(self.ports, self.public.port) if self.public else None


HOST_NAMESPACES = ("network_mode", "pid", "ipc")  # Compose keys that can say `host`


@dataclass(frozen=True)
class HostUse:
    """Something a service takes from the host itself rather than from its instance: the
    host's network, PID or IPC namespace, a host folder outside the instance's data path,
    or (kind "app") a folder of the app's own checkout, mounted by a relative path."""

    kind: str  # "bind", "app", or one of HOST_NAMESPACES
    value: str  # the host path (absolute or ~/...), or "host"
    service: str
    field: str  # where Compose says so: services.plex.volumes[0]


@dataclass(frozen=True)
class Shared:
    """The spec's `shared:` for one instance: its bind paths interpolated and normalised."""

    binds: tuple[str, ...] = ()
    namespaces: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # key -> services

    def allows(self, use: HostUse) -> bool:
        if use.kind == "bind":
            return any(_within(use.value, path) for path in self.binds)
        return use.service in self.namespaces.get(use.kind, ())


@dataclass(frozen=True)
class Target:
    app: str
    env: EnvConfig
    instance: Instance
    project: str
    domain: str | None
    data_path: str
    secrets_prefix: str
    database: str | None
    role: str | None
    bucket: str | None
    redis_prefix: str | None
    resources: Resources
    secret_store: str | None
    networks: Mapping[str, str]
    volumes: Mapping[str, str]  # Compose volume key -> concrete name
    volume_paths: Mapping[str, str]  # Compose volume key -> bind path, when volumes: bind
    external: tuple[str, ...]  # networks/volumes the Compose file declares external
    services: tuple[ServiceTarget, ...]
    variables: Mapping[str, str]  # exported to every service
    labels: Mapping[str, str]
    compose: ComposeModel = field(repr=False)
    warnings: tuple[str, ...] = ()
    host_uses: tuple[HostUse, ...] = ()
    shared: Shared = field(default_factory=Shared)
    engine: Engine = LOCAL  # where its containers, ports and folders are (spec `hosts:`)

    @property
    def id(self) -> str:
        return self.instance.id

    @property
    def host(self) -> str:
        return self.env.host

    def service(self, name: str) -> ServiceTarget:
        return next(s for s in self.services if s.name == name)

    def public_urls(self) -> dict[str, str]:
        return {s.name: s.url for s in self.services if s.url}

    def urls(self, proxy: str | None = None, engine_ports: Mapping[str, int] | None = None
             ) -> dict[str, str]:
        """Where each public service answers once the instance is up: through the proxy
        serving HTTP on `proxy` (its listen address) when one routes the instance, else on
        the service's published host port (`engine_ports`: service -> the host port the
        engine chose, when the env leaves the choice to it)."""
        # A remote host's proxy and ports answer at that host, never at this machine's
        # loopback or its `.localhost` names.
        remote = self.engine.remote
        found = {}
        for s in self.services:
            if s.public is None:
                continue
            # what routes_for gives Caddy; Traefik routes every public service by its labels
            routed = s.public_host_port is not None or self.env.routing == "traefik"
            if proxy and self.domain and routed:
                found[s.name] = proxy_url(proxy, self.domain, s.public.path, remote)
            elif url := published_url(s.ports, s.public.port, s.public.path,
                                      (engine_ports or {}).get(s.name),
                                      self.engine.address.host if remote else "127.0.0.1"):
                found[s.name] = url
        return found


def instance_for(
    project: Project, env_name: str, pr: int | None = None, run: str | None = None
) -> Instance:
    """Check the instance arguments against the env's kind; fill them from the environ.

    Seed 000 §3.3 selects a PR env with `ENV_SUFFIX=-pr-123` or `PR_NUMBER=123`; CI runs
    name themselves with their CI system's run id (CI_RUN_VARIABLES); `run` wins over both.
    """
    env = project.env(env_name)
    environ = project.environ
    if env.instances == "per-pr":
        if pr is None:
            pr = _pr_from_environ(environ)
        if pr is None:
            raise UsageError(
                f"env {env.name} has one instance per pull request: say which",
                f"pass --pr N (or set PR_NUMBER) for env {env.name}",
            )
        if pr < 1:
            raise UsageError(f"PR number must be 1 or more, not {pr}")
        return Instance(env.name, pr=pr)
    if pr is not None:
        raise UsageError(f"env {env.name} has a single instance; --pr is for per-PR envs like test")
    if env.instances == "per-run":
        raw = run or _run_from_environ(environ)
        if not raw:
            raise UsageError(
                f"env {env.name} has one instance per CI run, and no CI run id was found",
                "pass --run ID, or run it in CI: " + ", ".join(CI_RUN_VARIABLES) + " name the run",
            )
        return Instance(env.name, run=run_id(raw))
    return Instance(env.name)


# Where CI systems put the id of the run at hand, first match wins: GitHub Actions, GitLab
# (a job; its pipeline when only that is set), Jenkins, Buildkite, and envplane's own.
CI_RUN_VARIABLES = ("GITHUB_RUN_ID", "CI_JOB_ID", "CI_PIPELINE_ID", "BUILD_TAG", "BUILDKITE_BUILD_ID",
                    "CI_RUN_ID")


def _run_from_environ(environ: Mapping[str, str]) -> str | None:
    return next((environ[name] for name in CI_RUN_VARIABLES if environ.get(name, "").strip()), None)


def _pr_from_environ(environ: Mapping[str, str]) -> int | None:
    # ASCII digits only: "²" is a digit to str.isdigit but not to int()
    if re.fullmatch(r"[0-9]{1,9}", environ.get("PR_NUMBER", "")):
        return int(environ["PR_NUMBER"])
    match = re.fullmatch(r"-pr-([0-9]{1,9})", environ.get("ENV_SUFFIX", ""))
    return int(match.group(1)) if match else None


def resolve(project: Project, env_name: str, pr: int | None = None, run: str | None = None,
            recorded: Mapping[Instance, str] = MappingProxyType({})) -> Target:
    """`recorded`: the data paths the state store recorded at each instance's first `up`."""
    env = project.env(env_name)
    instance = instance_for(project, env_name, pr, run)
    values = _template_values(project, instance)
    suffix = _fill(project, env, "suffix", values)
    domain = _fill(project, env, "domain", values) if env.domain else None
    data_path, path_warnings = _data_path(project, env, instance, values, recorded.get(instance))
    domain_suffix = _fill(project, env, "domain_suffix", values)
    variables = _ladder_variables(project, env, suffix, domain_suffix, data_path)
    hidden = _Credentials(project.credentials)
    lookup = ChainMap(dict(variables), hidden.without(project.environ), hidden.without(project.dotenv))
    docs = (*project.compose, *project.overlays.get(env.name, ()))
    model, warnings = build_model(docs, lookup, env.profiles)
    warnings = hidden.warnings(warnings)
    target = _assemble(project, env, instance, model, [*path_warnings, *warnings], suffix, domain,
                       data_path, variables)
    base = project.compose[0].file.parent.as_posix()
    return replace(target, host_uses=host_uses(model.services, base, data_path),
                   shared=_shared(project, lookup, model.services),
                   engine=engine_for(project.spec, project.root, env))


@dataclass
class _Credentials:
    """Leaves envplane's credentials out of what Compose files interpolate (a PR's Compose
    file is its author's: `${ENVPLANE_S3_SECRET_KEY}` would hand its preview the admin
    key), and remembers which ones a file asked for."""

    names: frozenset[str]
    asked: set[str] = field(default_factory=set)

    def without(self, values: Mapping[str, str]) -> dict[str, str]:
        return _Hiding({k: v for k, v in values.items() if not is_credential(k, self.names)}, self)

    def warnings(self, found: list[str]) -> list[str]:
        """Compose's warnings, saying why for the credentials a file asked for."""
        unset = {unset_warning(name) for name in self.asked}
        return [*(w for w in found if w not in unset),
                *(f'The "{name}" variable holds a credential of envplane\'s and is never given to a '
                  "Compose file. Defaulting to a blank string." for name in sorted(self.asked))]


class _Hiding(dict[str, str]):
    def __init__(self, visible: dict[str, str], credentials: _Credentials) -> None:
        super().__init__(visible)
        self.credentials = credentials

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str) and is_credential(key, self.credentials.names):
            self.credentials.asked.add(key)
        return super().__contains__(key)

    def __missing__(self, key: str) -> str:
        self.__contains__(key)
        raise KeyError(key)


def _assemble(
    project: Project,
    env: EnvConfig,
    instance: Instance,
    model: ComposeModel,
    warnings: list[str],
    suffix: str,
    domain: str | None,
    data_path: str,
    variables: Mapping[str, str],
) -> Target:
    spec = project.spec
    services_data: dict[str, Any] = model.data.get("services", {})
    problems = _spec_services_problems(project, services_data)
    ports, port_problems = _host_ports(spec.app, env, instance, model, services_data)
    problems += port_problems
    problems += _public_route_problems(project)
    slug = instance.id
    secrets_env = _fill(project, env, "secrets_env", _template_values(project, instance))
    secrets_prefix = f"secret/data/{spec.app}/{secrets_env}"
    project_name = f"{spec.app}{suffix}" if suffix else spec.app
    labels = {LABEL_APP: spec.app, LABEL_ENV: env.name, LABEL_INSTANCE: slug}
    services = []
    compose_dir = project.compose[0].file.parent.as_posix() if project.compose else project.root.as_posix()
    for name, svc in services_data.items():
        svc_spec = spec.services.get(name)
        verdict = classify(svc, svc_spec.stateful if svc_spec else None, data_path, compose_dir)
        public = svc_spec.public if svc_spec else None
        env_vars = {**variables, "ENVPLANE_SERVICE": name, **(svc_spec.env if svc_spec else {})}
        service_ports = tuple(p for p in ports if p.service == name)
        if env.runtime == "process" and public is not None:
            env_vars["PORT"] = str(_local_port(service_ports, public.port))
        services.append(
            ServiceTarget(
                name=name,
                container_name=None
                if _scales(svc)
                else container_name(spec.app, name, suffix, svc.get("container_name")),
                ports=service_ports,
                public=public,
                url=_url(env, domain, public, service_ports),
                health=svc_spec.health if svc_spec else None,
                dev=svc_spec.dev if svc_spec else None,
                dev_cwd=svc_spec.dev_cwd if svc_spec else None,
                uses=tuple(svc_spec.uses) if svc_spec else (),
                secrets=tuple(svc_spec.secrets) if svc_spec else (),
                provided=_provided(spec.resources, svc_spec) if svc_spec else (),
                secret_path=f"{secrets_prefix}/{name}",
                env=env_vars,
                stateful=verdict.stateful,
                stateful_reason=verdict.reason,
            )
        )
    if problems:
        raise SpecError(problems)
    networks, externals = _scoped(model, "networks", project_name)
    volumes, external_volumes = _scoped(model, "volumes", project_name)
    resources = spec.resources
    return Target(
        app=spec.app,
        env=env,
        instance=instance,
        project=project_name,
        domain=domain,
        data_path=data_path,
        secrets_prefix=secrets_prefix,
        database=sql_identifier(spec.app, slug) if resources.postgres else None,
        role=sql_identifier(spec.app, slug) if resources.postgres else None,
        bucket=bucket_name(spec.app, slug) if resources.s3 else None,
        redis_prefix=f"{spec.app}:{slug}:" if resources.redis else None,
        resources=resources,
        secret_store=spec.secret_store,
        networks=networks,
        volumes=volumes,
        volume_paths={k: str(PurePosixPath(data_path) / k) for k in volumes}
        if env.volumes == "bind"
        else {},
        external=(*externals, *external_volumes),
        services=tuple(services),
        variables=variables,
        labels=labels,
        compose=model,
        warnings=tuple(warnings),
    )


def _provided(resources: Resources, service: ServiceSpec) -> tuple[str, ...]:
    """Names of the variables a service gets from its resources and secrets (no values)."""
    names: list[str] = []
    if "postgres" in service.uses and resources.postgres:
        names.append(resources.postgres.url_var)
    if "s3" in service.uses and resources.s3:
        names += [resources.s3.bucket_var, resources.s3.endpoint_var, "S3_ACCESS_KEY_ID",
                  "S3_SECRET_ACCESS_KEY"]
    if "redis" in service.uses and resources.redis:
        names += [resources.redis.url_var, resources.redis.prefix_var]
    return (*names, *service.secrets)


def _template_values(project: Project, instance: Instance) -> dict[str, str]:
    spec = project.spec
    values = {"app": spec.app, "prefix": spec.subdomain, "domain": spec.domain, "env": instance.env}
    if instance.pr is not None:
        values["pr"] = str(instance.pr)
    if instance.run is not None:
        values["run"] = instance.run
    return values


def _data_path(project: Project, env: EnvConfig, instance: Instance, values: dict[str, str],
               recorded: str | None) -> tuple[str, list[str]]:
    """The instance's data path, and a warning when the spec's value moved since it was recorded.

    An instance keeps the path recorded at its first `up` until it is purged. Before that
    first `up`, DATA_PATH from the environment wins over the ladder (seed 000 §3.3). Every
    path passes datapath's ownership rule; a bad one is refused here, at plan time.
    """
    root = PurePosixPath(project.root.as_posix())
    spec_path = str(PurePosixPath(_fill(project, env, "data_path", {**values, "project_dir": str(root)})))
    why = not_owned(spec_path, project.app, instance.id, root)
    if why is not None:
        raise SpecError([project.doc.problem(("environments", env.name, "data_path"), why, RULE_HINT)])
    shell = project.environ.get("DATA_PATH") or None
    if recorded is not None:
        if shell is not None and PurePosixPath(shell) != PurePosixPath(recorded):
            raise UsageError(
                f"DATA_PATH={shell} disagrees with the data path of {env.name} {instance.id}, "
                f"{recorded}, recorded at its first `up`",
                "unset DATA_PATH: an instance keeps its data path until it is purged")
        moved = [] if spec_path == recorded else [
            f"environments.{env.name}.data_path is now {spec_path}, but {instance.id} keeps "
            f"{recorded}, recorded at its first `up`, until it is purged"]
        return recorded, moved
    if shell is not None:
        why = not_owned(shell, project.app, instance.id, root)
        if why is not None:
            raise UsageError(f"DATA_PATH: {why}", RULE_HINT)
        return str(PurePosixPath(shell)), []
    return spec_path, []


def _fill(project: Project, env: EnvConfig, key: str, values: dict[str, str]) -> str:
    """One template of the env filled; a field it cannot fill is the spec's mistake."""
    try:
        return fill(getattr(env, key), values)
    except UsageError as exc:
        raise SpecError([project.doc.problem(("environments", env.name, key),
                                             f"{exc.message} (env {env.name})", exc.hint)]) from None


def _ladder_variables(
    project: Project, env: EnvConfig, suffix: str, domain_suffix: str, data_path: str
) -> dict[str, str]:
    """The seed 000 §1 variables every service gets, plus the env's own `env:`."""
    # ENV_SUFFIX from the environment only selects a PR (see instance_for): names and
    # the exported value always agree, so a stray shell variable cannot merge two envs.
    return {
        **env.env,
        "DEPLOY_ENV": env.name,
        "ENV_SUFFIX": suffix,
        "ENV_DOMAIN_SUFFIX": domain_suffix,
        "DATA_PATH": data_path,
        "ENVPLANE_APP": project.spec.app,
    }


def _spec_services_problems(project: Project, services: Mapping[str, Any]) -> list[Problem]:
    problems = []
    for name in project.spec.services:
        if name not in services:
            problems.append(
                project.doc.problem(
                    ("services", name),
                    f"no service {name!r} in the Compose files",
                    "Compose services: " + (", ".join(services) or "(none)"),
                )
            )
    for hook, spec in project.spec.hooks.items():
        if spec.service not in services:
            problems.append(project.doc.problem(
                ("hooks", hook, "service"), f"no service {spec.service!r} in the Compose files",
                "Compose services: " + (", ".join(services) or "(none)")))
    return problems


def _public_route_problems(project: Project) -> list[Problem]:
    problems = []
    seen: dict[str, str] = {}
    for name, svc in project.spec.services.items():
        if svc.public is None:
            continue
        other = seen.get(svc.public.path)
        if other is not None:
            problems.append(
                project.doc.problem(
                    ("services", name, "public"),
                    f"services {other} and {name} both claim the public path {svc.public.path}",
                    "give one of them another `path:`",
                )
            )
        seen.setdefault(svc.public.path, name)
    return problems


def _host_ports(
    app: str, env: EnvConfig, instance: Instance, model: ComposeModel, services: Mapping[str, Any]
) -> tuple[list[PortPlan], list[Problem]]:
    requests = [
        PortRequest(name, index, m.target, m.published, m.protocol, m.host_ip)
        for name, svc in services.items()
        for index, raw in enumerate(svc.get("ports") or [])
        for m in parse_port(raw, model, ("services", name, "ports", index))
    ]
    plans, errors = assign(env, requests, instance.pr, app)
    problems = [_port_problem(model, err) for err in errors]
    problems += _same_host_port(model, plans)
    return plans, problems


def _port_problem(model: ComposeModel, err: PortError) -> Problem:
    return model.problem(("services", err.request.service, "ports", err.request.index), err.message, err.hint)


def _same_host_port(model: ComposeModel, plans: list[PortPlan]) -> list[Problem]:
    """Two services of one instance publishing the same host port (one public port, two owners)."""
    owners: dict[tuple[int, str], PortPlan] = {}
    problems = []
    for plan in plans:
        if plan.published is None:
            continue
        key = (plan.published, plan.protocol)
        first = owners.setdefault(key, plan)
        if first is not plan and first.service != plan.service:
            problems.append(
                model.problem(
                    ("services", plan.service, "ports", plan.index),
                    f"host port {plan.published}/{plan.protocol} is claimed by both "
                    f"services.{first.service} and services.{plan.service}",
                    "publish one of them on another host port",
                )
            )
    return problems


def _local_port(ports: tuple[PortPlan, ...], public_port: int) -> int:
    found = published_port(ports, public_port)
    return public_port if found is None else found


def _url(
    env: EnvConfig, domain: str | None, public: PublicRoute | None, ports: tuple[PortPlan, ...]
) -> str | None:
    """The service's address on the env's domain; with no domain, where it answers itself."""
    if public is None:
        return None
    path = public.path
    if env.runtime == "process":
        return f"http://localhost:{_local_port(ports, public.port)}{path}"
    if domain is None:
        return published_url(ports, public.port, path)
    scheme = "http" if domain == "localhost" or domain.endswith(".localhost") else "https"
    return f"{scheme}://{domain}{path}"


def published_url(ports: tuple[PortPlan, ...], public_port: int, path: str,
                  engine_port: int | None = None, here: str = "127.0.0.1") -> str | None:
    """The container port's published host port, as a URL that answers on its host
    (`here`: that host's address, for a port published on all of them)."""
    plan = next((p for p in ports if p.target == public_port and p.protocol == "tcp"), None)
    port = plan and (plan.published or engine_port)
    if plan is None or port is None:
        return None
    host = plan.host_ip if plan.host_ip not in ("", "0.0.0.0", "::") else here
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}{path}"


def local_alias(domain: str) -> str:
    """`report-pr-7.example.com` -> `report-pr-7.localhost`: how this host reaches an
    instance through the local proxy (`*.localhost` is loopback for browsers and curl)."""
    return domain.split(".", 1)[0] + ".localhost"


def proxy_url(listen: str, domain: str, path: str, remote: bool = False) -> str:
    """Where a user reaches a routed service through the proxy serving HTTP on `listen`.

    A proxy on this machine's loopback or on every interface answers the `.localhost`
    alias here; one bound to another address, or on a remote host, is reached by the
    domain. Plain HTTP, so port 80 is left out.
    """
    host, _, port = listen.removeprefix("tcp/").rpartition(":")
    host = host.strip("[]")
    on_loopback = host in ("", "0.0.0.0", "::", "::1", "localhost") or host.startswith("127.")
    name = domain if remote or not on_loopback else local_alias(domain)
    return f"http://{name}{'' if port == '80' else ':' + port}{path}"


def _scales(service: Mapping[str, Any]) -> bool:
    replicas = (service.get("deploy") or {}).get("replicas")
    scale = service.get("scale")
    return any(isinstance(n, int) and n > 1 for n in (replicas, scale))


def _scoped(model: ComposeModel, kind: str, project_name: str) -> tuple[dict[str, str], list[str]]:
    """Compose networks or volumes -> the instance's names; external ones stay shared."""
    declared: Mapping[str, Any] = model.data.get(kind) or {}
    names: dict[str, str] = {}
    external: list[str] = []
    for key, value in declared.items():
        value = value or {}
        if value.get("external"):
            external.append(f"{kind[:-1]} {value.get('name') or key}")
            continue
        names[key] = f"{project_name}_{key}"
    if kind == "networks" and "default" not in names:
        names["default"] = f"{project_name}_default"
    return names, external


def host_uses(services: Mapping[str, Any], base: str, data_path: str | None = None) -> tuple[HostUse, ...]:
    """What each service takes from the host; binds under the data path are the instance's own.
    `base` is the folder relative bind sources start from."""
    uses: list[HostUse] = []
    for name, svc in services.items():
        for key in HOST_NAMESPACES:
            if svc.get(key) == "host":
                uses.append(HostUse(key, "host", name, f"services.{name}.{key}"))
        for index, raw in enumerate(svc.get("volumes") or []):
            try:
                mount = parse_volume(raw)
            except VolumeSyntaxError:
                continue  # check_structure reported it already
            if mount.kind != "bind" or not mount.source:
                continue
            where = f"services.{name}.volumes[{index}]"
            if mount.source.startswith(("/", "~")):
                path = posixpath.normpath(mount.source)
                if data_path is None or not _within(path, data_path):
                    uses.append(HostUse("bind", path, name, where))
            else:
                path = posixpath.normpath(posixpath.join(base, mount.source))
                uses.append(HostUse("app", path, name, where))
    return tuple(uses)


def _within(path: str, folder: str) -> bool:
    return PurePosixPath(path).is_relative_to(PurePosixPath(folder))


_SHARED_KEYS = {"host_network": "network_mode", "host_pid": "pid", "host_ipc": "ipc"}


def _shared(project: Project, lookup: Mapping[str, str], services: Mapping[str, Any]) -> Shared:
    """The spec's `shared:` for this instance: binds interpolated as the Compose files are."""
    declared = project.spec.shared
    problems: list[Problem] = []
    binds: list[str] = []
    for index, raw in enumerate(declared.binds):
        at = ("shared", "binds", index)
        try:
            path, _ = substitute(raw, lookup)
        except InterpolationError as exc:
            problems.append(project.doc.problem(at, exc.message, exc.hint))
            continue
        if not path.startswith(("/", "~")):
            problems.append(project.doc.problem(
                at, f"must be an absolute host path (or start with ~), not {path!r}",
                "name the host folder that instances may share, e.g. /srv/media"))
            continue
        binds.append(posixpath.normpath(path))
    namespaces: dict[str, tuple[str, ...]] = {}
    for key, compose_key in _SHARED_KEYS.items():
        names: list[str] = getattr(declared, key)
        for index, name in enumerate(names):
            if name not in services:
                problems.append(project.doc.problem(
                    ("shared", key, index), f"no service {name!r} in the Compose files",
                    "Compose services: " + (", ".join(services) or "(none)")))
        namespaces[compose_key] = tuple(names)
    if problems:
        raise SpecError(problems)
    return Shared(tuple(binds), namespaces)
