"""`envplane secrets set/get/list/rm/rotate-key` and `envplane provision`.

Values come in on stdin or a hidden prompt, never as an argument (a command line is
visible to every user of the host and lands in shell history).
"""

from __future__ import annotations

import getpass
import os
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from envplane.cli.main import EnvArg, JsonOpt, PrOpt, RunOpt, SpecOpt, _options, app
from envplane.cli.output import err, out, print_json, table
from envplane.errors import NotFound, NothingToDo, UsageError
from envplane.secret import Secret

if TYPE_CHECKING:  # loaded by the commands that use them, not by every `envplane` start
    from envplane.backends.secrets.base import SecretStore

secrets_app = typer.Typer(help="Secrets of an env instance: secret/data/{app}/{env}/{service}.",
                          no_args_is_help=True)
app.add_typer(secrets_app, name="secrets")

ServiceOpt = Annotated[str, typer.Option("--service", "-s", help="The service the secret is for.")]
KeyArg = Annotated[str, typer.Argument(help="Variable name, e.g. API_KEY.")]
EnvReq = Annotated[str, typer.Argument(help="Environment.")]


def _store(ctx: typer.Context, spec: SpecOpt, env: str, pr: int | None, run: str | None,
           service: str | None = None) -> tuple[SecretStore, str]:
    """The instance's secret store and its prefix; `service`, when given, must be one of the
    instance's (a typo would store a secret no container gets), or `registry` when the spec
    names one (its credentials: README, Images to hosts)."""
    from envplane import actions
    from envplane.backends.secrets import open_secret_store
    from envplane.hosts.transfer import REGISTRY_SERVICE
    from envplane.provision import store_kind

    project = actions.open_project(_options(ctx, spec, False).spec, os.environ)
    target = actions.resolve(project, env, pr, run)
    if service is not None and not (service == REGISTRY_SERVICE and project.spec.registry is not None):
        actions.named_service(target, service)
    return (open_secret_store(store_kind(target, os.environ), project.root, os.environ, project.app),
            target.secrets_prefix)


def _key(key: str) -> str:
    from envplane.spec.models import VAR_NAME

    if not VAR_NAME.match(key):
        raise UsageError(f"{key!r} is not a variable name", "use letters, digits and _, e.g. API_KEY")
    return key


@secrets_app.command("set")
def secrets_set(ctx: typer.Context, env: EnvReq, key: KeyArg, service: ServiceOpt,
                pr: PrOpt = None, run: RunOpt = None, spec: SpecOpt = None) -> None:
    """Store a secret, read from stdin (piped) or a hidden prompt."""
    from envplane.compose.dotenv import NotCarried, quoted

    store, prefix = _store(ctx, spec, env, pr, run, service)
    value = getpass.getpass(f"{_key(key)} for {service}: ") if sys.stdin.isatty() else _piped(key)
    if not value:
        raise UsageError("empty value", "pipe the value in, or type it at the prompt")
    try:
        quoted(_key(key), value)  # a value no container could be given is refused now, not at `up`
    except NotCarried as exc:
        raise UsageError(str(exc), exc.hint) from None
    store.write(f"{prefix}/{service}", {_key(key): Secret(value)})
    err.print(f"stored {key} at {prefix}/{service}")


def _piped(key: str) -> str:
    try:
        return sys.stdin.buffer.read().decode("utf-8").rstrip("\n")
    except UnicodeDecodeError:
        raise UsageError(f"the value of {key} is not UTF-8 text",
                         "store binary values encoded, e.g. base64, and decode them in the app") from None


@secrets_app.command("get")
def secrets_get(ctx: typer.Context, env: EnvReq, key: KeyArg, service: ServiceOpt,
                pr: PrOpt = None, run: RunOpt = None, spec: SpecOpt = None) -> None:
    """Print one secret's value (the only command that does), for piping."""
    store, prefix = _store(ctx, spec, env, pr, run, service)
    value = store.read(f"{prefix}/{service}").get(_key(key))
    if value is None:
        raise NotFound(f"no secret {key} at {prefix}/{service}", "see `envplane secrets list`")
    sys.stdout.write(value.reveal() + ("\n" if sys.stdout.isatty() else ""))


@secrets_app.command("list")
def secrets_list(ctx: typer.Context, env: EnvReq, pr: PrOpt = None, run: RunOpt = None,
                 spec: SpecOpt = None, as_json: JsonOpt = False) -> None:
    """Paths and key names of the instance's secrets; never their values."""
    store, prefix = _store(ctx, spec, env, pr, run)
    # A Vault path whose last key was removed keeps an empty version (see remove): not listed.
    rows = [(path, keys) for path in store.list(prefix) if (keys := sorted(store.read(path)))]
    if _options(ctx, spec, as_json).json:
        print_json([{"path": path, "keys": keys} for path, keys in rows])
        return
    if not rows:
        out.print(f"no secrets under {prefix}/")
        return
    t = table(f"secrets under {prefix}/", ["path", "keys"])
    for path, keys in rows:
        t.add_row(path, ", ".join(keys))
    out.print(t)


@secrets_app.command("rm")
def secrets_rm(ctx: typer.Context, env: EnvReq, key: KeyArg, service: ServiceOpt,
               pr: PrOpt = None, run: RunOpt = None, spec: SpecOpt = None) -> None:
    """Remove one secret."""
    store, prefix = _store(ctx, spec, env, pr, run, service)
    path = f"{prefix}/{service}"
    if not store.remove(path, [_key(key)]):
        raise NothingToDo(f"no secret {key} at {path}: nothing to remove")
    err.print(f"removed {key} from {path}")


@secrets_app.command("rotate-key")
def secrets_rotate_key(ctx: typer.Context, spec: SpecOpt = None) -> None:
    """Re-encrypt the embedded file store with a new key (the key file is replaced)."""
    from envplane import actions
    from envplane.backends.secrets.file import DATA_FILE, FileSecretStore, new_key
    from envplane.private import FOLDER

    project = actions.open_project(_options(ctx, spec, False).spec, os.environ)
    if os.environ.get("ENVPLANE_SECRETS", "file") != "file":
        raise UsageError("rotate-key is for the embedded file store",
                         "Vault/OpenBao and SOPS rotate keys with their own tools")
    if not (project.root / FOLDER / DATA_FILE).exists():  # and no key file is made for it
        raise NothingToDo(f"no secrets of {project.app} are stored here: nothing to re-encrypt")
    store = FileSecretStore.open(project.root / FOLDER, os.environ, project.app)
    store.rotate_key(new_key())
    err.print("secrets re-encrypted with a new key"
              + (" — set the new ENVPLANE_SECRET_KEY before the next run"
                 if os.environ.get("ENVPLANE_SECRET_KEY") else ""))


@app.command("provision")
def provision(ctx: typer.Context, env: EnvArg = None, pr: PrOpt = None, run: RunOpt = None,
              spec: SpecOpt = None, as_json: JsonOpt = False) -> None:
    """Create the instance's resources only: passwords, database, bucket, cache, env files."""
    from envplane import actions
    from envplane.apply import Applier

    opts = _options(ctx, spec, as_json)
    project = actions.open_project(opts.spec, os.environ)
    target = actions.resolve_checked(project, actions.default_env(os.environ, env), pr, run)
    plan = actions.plan(project, target)
    applier = Applier(project)
    done = applier.provision_only(plan)
    if opts.json:
        print_json([{"action": c.action, "what": c.what, "reason": c.reason} for c in done])
        return
    if not done:
        out.print("nothing to provision: the spec declares no resources")
    for change in done:
        out.print(str(change))
