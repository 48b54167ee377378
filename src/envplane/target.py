"""resolve(project, env, instance) -> Target: every concrete name of one env instance.

Pure: it reads nothing from disk and nothing from the process environment; the
Project carries the files' text and the environ snapshot it was loaded with.
"""

from __future__ import annotations

import re
from collections import ChainMap
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from envplane.compose.load import build_model
from envplane.compose.merge import ComposeModel
from envplane.compose.model import parse_port
from envplane.errors import Problem, SpecError, UsageError
from envplane.names import Instance, bucket_name, container_name, fill, run_id, sql_identifier
from envplane.ports import PortError, PortPlan, PortRequest, assign, published_port
from envplane.spec.ladder import EnvConfig
from envplane.spec.load import Project
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

    @property
    def public_host_port(self) -> int | None:
        """The host port the public container port is published on, if it is."""
        return published_port(self.ports, self.public.port) if self.public else None


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


def instance_for(
    project: Project, env_name: str, pr: int | None = None, run: str | None = None
) -> Instance:
    """Check the instance arguments against the env's kind; fill them from the environ.

    Seed 000 §3.3 selects a PR env with `ENV_SUFFIX=-pr-123` or `PR_NUMBER=123`; CI runs
    name themselves with `GITHUB_RUN_ID` (or `CI_RUN_ID`).
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
        raw = run or environ.get("GITHUB_RUN_ID") or environ.get("CI_RUN_ID") or "local"
        return Instance(env.name, run=run_id(raw))
    return Instance(env.name)


def _pr_from_environ(environ: Mapping[str, str]) -> int | None:
    if environ.get("PR_NUMBER", "").isdigit():
        return int(environ["PR_NUMBER"])
    match = re.fullmatch(r"-pr-(\d+)", environ.get("ENV_SUFFIX", ""))
    return int(match.group(1)) if match else None


def resolve(project: Project, env_name: str, pr: int | None = None, run: str | None = None) -> Target:
    env = project.env(env_name)
    instance = instance_for(project, env_name, pr, run)
    values = _template_values(project, instance)
    suffix = fill(env.suffix, values)
    domain = fill(env.domain, values) if env.domain else None
    data_path = _data_path(project, env, values)
    variables = _ladder_variables(project, env, suffix, fill(env.domain_suffix, values), data_path)
    lookup = ChainMap(dict(variables), dict(project.environ), dict(project.dotenv))
    docs = (*project.compose, *project.overlays.get(env.name, ()))
    model, warnings = build_model(docs, lookup, env.profiles)
    return _assemble(project, env, instance, model, warnings, suffix, domain, data_path, variables)


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
    secrets_prefix = f"secret/data/{spec.app}/{fill(env.secrets_env, _template_values(project, instance))}"
    project_name = f"{spec.app}{suffix}" if suffix else spec.app
    labels = {LABEL_APP: spec.app, LABEL_ENV: env.name, LABEL_INSTANCE: slug}
    services = []
    for name, svc in services_data.items():
        svc_spec = spec.services.get(name)
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
        warnings=tuple(warnings) + tuple(_shared_bind_warnings(services_data)),
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


def _data_path(project: Project, env: EnvConfig, values: dict[str, str]) -> str:
    # Seed 000 §3.3: an explicit DATA_PATH in the environment wins over the ladder.
    raw = project.environ.get("DATA_PATH") or fill(env.data_path, values)
    path = PurePosixPath(raw)
    if not path.is_absolute():
        path = PurePosixPath(project.root.as_posix()) / path
    return str(path)


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
    if public is None:
        return None
    path = public.path
    if env.runtime == "process" or domain is None:
        port = _local_port(ports, public.port) if env.runtime == "process" else None
        if port is None:
            return None
        return f"http://localhost:{port}{path}"
    scheme = "http" if domain == "localhost" or domain.endswith(".localhost") else "https"
    return f"{scheme}://{domain}{path}"


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


def _shared_bind_warnings(services: Mapping[str, Any]) -> list[str]:
    """Host paths outside the project (`~/data:/data`) are shared by every env instance."""
    out = []
    for name, svc in services.items():
        for raw in svc.get("volumes") or []:
            source = raw.split(":", 1)[0] if isinstance(raw, str) and ":" in raw else None
            if isinstance(raw, dict) and raw.get("type") == "bind":
                source = raw.get("source")
            if source and source.startswith("~"):
                out.append(
                    f"services.{name}.volumes: {source} is a host folder every env shares; "
                    "use a named volume so envplane can give each env its own"
                )
    return out
