"""`envplane ci init github`: write the CI workflows of seed 002's table (issue 14)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from envplane import __version__
from envplane.cli.main import JsonOpt, SpecOpt, _options, app
from envplane.cli.output import err, out, print_json
from envplane.errors import UsageError

ci_app = typer.Typer(help="CI files: workflows that test, preview, release and promote through envplane.",
                     no_args_is_help=True)
app.add_typer(ci_app, name="ci")


@ci_app.command("init")
def ci_init(
    ctx: typer.Context,
    system: Annotated[str, typer.Argument(help="The CI system: github (GitHub Actions).")],
    force: Annotated[bool, typer.Option("--force", help="Replace workflow files that exist.")] = False,
    test: Annotated[list[str] | None, typer.Option(
        "--test", help="A shell line ci.yml runs against the run's ci instance; repeat for more.",
        show_default=False)] = None,
    install: Annotated[str, typer.Option("--install", help="What the runners pip-install.")]
    = f"envplane=={__version__}",
    python: Annotated[str, typer.Option("--python", help="The runners' Python version.")] = "3.11",
    branch: Annotated[str, typer.Option("--branch", help="The branch whose pushes go to staging.")] = "main",
    server: Annotated[str | None, typer.Option(
        "--server", help="The envplane server's URL (default: the ENVPLANE_SERVER repository variable).",
        show_default=False)] = None,
    spec: SpecOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write .github/workflows: tests on PRs, a preview per PR, staging on each push to main,
    production on a release tag; the server's token comes from the ENVPLANE_TOKEN secret."""
    from envplane import actions, ci_files, preview
    from envplane.checkouts import repository_root

    if system != "github":
        raise UsageError(f"unknown CI system {system!r}", "envplane writes workflows for: github")
    opts = _options(ctx, spec, as_json)
    project = actions.open_project(opts.spec, os.environ)
    spec_file = project.doc.file.resolve()
    root = repository_root(spec_file.parent)
    for name in ("staging", "production"):
        project.env(name)
    uses = project.spec.resources is not None and any(
        getattr(project.spec.resources, kind) is not None for kind in ("postgres", "s3", "redis"))
    settings = ci_files.Settings(
        app=project.app, workdir=spec_file.parent.relative_to(root).as_posix(), spec_file=spec_file.name,
        install=install, python=python, branch=branch, server=server, tests=tuple(test or ()),
        platform=uses and not project.envs["ci"].servers, preview_env=preview.preview_env(project.envs))
    written = ci_files.write(root, ci_files.render(settings), force)
    shown = [str(Path(p).relative_to(root)) for p in written]
    if opts.json:
        print_json({"root": str(root), "written": shown,
                    "secrets": ["ENVPLANE_TOKEN"], "variables": [] if server else ["ENVPLANE_SERVER"]})
        return
    for name in shown:
        out.print(f"wrote {escape(name)}")
    where = "" if server else "the repository variable ENVPLANE_SERVER (the server's URL) and "
    err.print(f"next: set {where}the secret ENVPLANE_TOKEN: a token with deploy:test (and "
              "deploy:staging), and a deploy:production one in the GitHub environment `production` "
              "(README: CI files)")
