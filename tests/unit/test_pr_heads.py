"""A PR preview is the PR's app (#9.5): its spec and Compose files, the server's state, its own
images, and no reach into the server's other instances. Plus the `webhook:` spec keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from envplane import actions
from envplane.checkouts import head_project
from envplane.commands import git
from envplane.errors import IsolationError, SpecError, UsageError
from envplane.spec.load import load_project
from envplane.webhook_runner import instance_images

COMPOSE = """\
services:
  web:
    build: ./web
    image: shop-web:dev
    ports: ["8080:8080"]
  worker:
    build: ./worker
  cache:
    image: redis:7
"""
SPEC = """\
app: shop
domain: example.com
compose: compose.yaml
environments:
  staging:
    data_path: /srv/shop/staging
"""


def app(folder: Path, spec: str = SPEC, compose: str = COMPOSE) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "compose.yaml").write_text(compose)
    (folder / "envplane.yaml").write_text(spec)
    return folder / "envplane.yaml"


def test_the_head_project_reads_the_pr_s_files_and_keeps_the_server_s_state(tmp_path: Path) -> None:
    server = load_project(app(tmp_path / "server"), {})
    spec = app(tmp_path / "tree" / "apps" / "shop", compose=COMPOSE.replace("8080:8080", "9090:9090"))
    head = head_project(server, spec)
    assert head.root == server.root  # .envplane/ (state, secrets, rendered files) is the server's
    assert head.compose[0].file == spec.parent / "compose.yaml"  # build contexts, binds: the PR's
    assert "9090:9090" in (spec.parent / "compose.yaml").read_text()


def test_a_pr_may_not_rename_the_app(tmp_path: Path) -> None:
    server = load_project(app(tmp_path / "server"), {})
    spec = app(tmp_path / "tree", spec=SPEC.replace("app: shop", "app: other"))
    with pytest.raises(UsageError, match="the PR renames the app from 'shop' to 'other'"):
        head_project(server, spec)


def test_a_pr_without_the_spec_is_a_clear_error(tmp_path: Path) -> None:
    server = load_project(app(tmp_path / "server"), {})
    (tmp_path / "tree").mkdir()
    with pytest.raises(UsageError, match=r"the PR's tree has no envplane\.yaml"):
        head_project(server, tmp_path / "tree" / "envplane.yaml")


def test_a_dotenv_the_pr_lacks_comes_from_the_server(tmp_path: Path) -> None:
    (tmp_path / "server").mkdir()
    (tmp_path / "server" / ".env").write_text("GREETING=from-server\n")
    server = load_project(app(tmp_path / "server"), {})
    assert head_project(server, app(tmp_path / "tree")).dotenv["GREETING"] == "from-server"
    (tmp_path / "tree2").mkdir()
    (tmp_path / "tree2" / ".env").write_text("GREETING=from-pr\n")
    assert head_project(server, app(tmp_path / "tree2")).dotenv["GREETING"] == "from-pr"


@pytest.mark.parametrize("change", [
    "  test:\n    data_path: /srv/shop/staging/shop-pr-{pr}\n  staging:\n    data_path: /srv/elsewhere/shop/staging\n",
    "  test:\n    secrets_env: staging\n  staging:\n    secrets_env: moved\n",
])
def test_a_pr_s_spec_cannot_move_its_preview_onto_the_server_s_staging(tmp_path: Path, change: str) -> None:
    server = load_project(app(tmp_path / "server"), {})
    pr_spec = SPEC.split("environments:\n")[0] + "environments:\n" + change
    head = head_project(server, app(tmp_path / "tree", spec=pr_spec))
    actions.resolve_checked(head, "test", 5)  # the PR's own spec sees no clash...
    with pytest.raises(IsolationError, match="staging"):
        actions.resolve_checked(head, "test", 5, reference=server)  # ...the server's does


def test_a_preview_builds_images_under_its_own_tag(tmp_path: Path) -> None:
    target = actions.resolve(load_project(app(tmp_path), {}), "test", 7)
    services = instance_images(target).compose.data["services"]
    assert services["web"]["image"] == "shop-web:pr-7"  # not shop-web:dev, shared by every instance
    assert "image" not in services["worker"]  # Compose names it after the instance's project already
    assert services["cache"]["image"] == "redis:7"  # not built: left alone
    assert target.compose.data["services"]["web"]["image"] == "shop-web:dev"  # the target is not edited


def test_git_commands_fetch_one_commit_into_the_pr_s_own_ref() -> None:
    repo, tree = Path("/srv/repo"), Path("/srv/app/.envplane/webhook/worktrees/pr-7")
    assert git.fetch(repo, "origin", "b" * 40, "refs/envplane/shop/pr-7") == [
        "git", "-C", "/srv/repo", "fetch", "--quiet", "--no-tags", "--no-recurse-submodules",
        "--no-write-fetch-head", "origin", f"+{'b' * 40}:refs/envplane/shop/pr-7"]
    assert git.worktree_add(repo, tree, "b" * 40) == [
        "git", "-C", "/srv/repo", "worktree", "add", "--quiet", "--detach", str(tree), "b" * 40]
    assert git.checkout(tree, "c" * 40) == ["git", "-C", str(tree), "checkout", "--quiet", "--force",
                                            "--detach", "c" * 40]
    assert git.clean(tree) == ["git", "-C", str(tree), "clean", "-ffdxq"]
    assert git.worktree_remove(repo, tree)[3:5] == ["worktree", "remove"]


def spec_problems(tmp_path: Path, webhook: str) -> list[str]:
    path = app(tmp_path, spec=SPEC + webhook)
    with pytest.raises(SpecError) as info:
        load_project(path, {})
    return [p.render().replace(str(tmp_path) + "/", "") for p in info.value.problems]


def test_the_webhook_policy_is_read_from_the_spec(tmp_path: Path) -> None:
    spec = SPEC + "webhook:\n  allow_forks: true\n  authors: [alice, bob-2]\n  max_worktrees: 3\n"
    policy = load_project(app(tmp_path, spec=spec), {}).spec.webhook
    assert (policy.allow_forks, policy.authors, policy.max_worktrees, policy.remote) == (
        True, ["alice", "bob-2"], 3, "origin")
    default = load_project(app(tmp_path / "plain"), {}).spec.webhook
    assert (default.allow_forks, default.authors, default.release_on_push) == (False, None, None)
    pushed = SPEC + "webhook:\n  release_on_push: {branch: main}\n"
    rule = load_project(app(tmp_path / "pushed", spec=pushed), {}).spec.webhook.release_on_push
    assert rule is not None and (rule.branch, rule.env) == ("main", "staging")


@pytest.mark.parametrize(("webhook", "expected"), [
    ("webhook:\n  allow_forks: 'yes'\n", "webhook.allow_forks: must be true or false (envplane.yaml:8)"),
    ("webhook:\n  allow_fork: true\n", "webhook.allow_fork: unknown key (envplane.yaml:8)"),
    ("webhook:\n  authors: [alice, 'not a login!']\n",
     "webhook.authors: 'not a login!' is not a GitHub login (envplane.yaml:8)"),
    ("webhook:\n  authors: alice\n", "webhook.authors: must be a list (envplane.yaml:8)"),
    ("webhook:\n  max_worktrees: 0\n", "webhook.max_worktrees: input should be greater than or equal to 1 (envplane.yaml:8)"),
    ("webhook:\n  remote: --upload-pack=x\n", "webhook.remote: must be the name of a git remote, e.g. origin "
                                             "(envplane.yaml:8)"),
    ("webhook:\n  release_on_push: main\n", "webhook.release_on_push: must be a mapping (envplane.yaml:8)"),
    ("webhook:\n  release_on_push: {env: staging}\n", "webhook.release_on_push.branch: is required "
                                                      "(envplane.yaml:8)"),
    ("webhook:\n  release_on_push: {branch: main..x}\n", "webhook.release_on_push.branch: 'main..x' is not a "
                                                         "branch name (envplane.yaml:8)"),
    ("webhook:\n  release_on_push:\n    branch: main\n    env: nope\n",
     "webhook.release_on_push.env: unknown environment 'nope' (envplane.yaml:10)"),
    ("webhook:\n  release_on_push:\n    branch: main\n    env: production\n",
     "webhook.release_on_push.env: env production takes a version only through its gates (approval among "
     "them) (envplane.yaml:10)"),
    ("webhook:\n  release_on_push:\n    branch: main\n    env: test\n",
     "webhook.release_on_push.env: env test has no single instance on an engine that a release could go to "
     "(envplane.yaml:10)"),
])
def test_a_bad_webhook_policy_names_file_line_and_field(tmp_path: Path, webhook: str, expected: str) -> None:
    assert spec_problems(tmp_path, webhook) == [expected]
