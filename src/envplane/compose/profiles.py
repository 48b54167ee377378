"""Select the services of the active profiles, as `docker compose --profile` does. Pure.

Services without `profiles` always stay; `*` activates every profile. A kept service
that depends on a left-out one is an error, as in Compose, unless the dependency says
`required: false` (Compose keeps such a reference and starts without it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from envplane.compose.merge import ComposeModel
from envplane.errors import Problem, SpecError


def select_profiles(model: ComposeModel, active: Iterable[str]) -> ComposeModel:
    """A model with only the enabled services; SpecError naming both ends of a broken dependency."""
    wanted = set(active)
    services = model.services
    kept = {name: svc for name, svc in services.items() if _enabled(svc, wanted)}
    problems = [p for name, svc in kept.items() for p in _dependency_problems(model, name, svc, kept)]
    if problems:
        raise SpecError(problems)
    if len(kept) == len(services):
        return model
    return replace(model, data={**model.data, "services": kept})


def _enabled(svc: Any, active: set[str]) -> bool:
    profiles = svc.get("profiles") if isinstance(svc, dict) else None
    if not profiles or "*" in active:
        return True
    return bool(active & {str(p) for p in profiles})


def _dependency_problems(model: ComposeModel, name: str, svc: Any, kept: Mapping[str, Any]) -> list[Problem]:
    deps = svc.get("depends_on") if isinstance(svc, dict) else None
    if not isinstance(deps, dict):
        return []
    problems = []
    for dep, options in deps.items():
        required = not (isinstance(options, dict) and options.get("required") is False)
        if dep in kept or not required:
            continue
        path = ("services", name, "depends_on", dep)
        profiles = _profiles_of(model, dep)
        if profiles is None:
            problems.append(
                model.problem(
                    path,
                    f"service {name} depends on undefined service {dep}",
                    f"define {dep}, or remove it from depends_on",
                )
            )
            continue
        problems.append(
            model.problem(
                path,
                f"service {name} depends on service {dep}, which no active profile enables",
                f"activate a profile of {dep} ({', '.join(profiles)}), or set `required: false` on it",
            )
        )
    return problems


def _profiles_of(model: ComposeModel, name: str) -> list[str] | None:
    svc = model.services.get(name)
    if not isinstance(svc, dict):
        return None
    return [str(p) for p in svc.get("profiles") or []]
