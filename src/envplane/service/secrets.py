"""The secret values of an app, for masking what the interfaces show (MCP answers, the
dashboard's log stream): a container may print its own secret, a plan may name one."""

from __future__ import annotations

from envplane.errors import EnvplaneError
from envplane.secret import Secret
from envplane.spec.load import Project


def app_secrets(project: Project) -> list[Secret]:
    """Every secret value the app's stores hold, to mask in answers (a container may print
    one; a plan may name one). Reading them never returns them."""
    from envplane.backends.secrets import open_secret_store
    from envplane.backends.secrets.file import DATA_FILE
    from envplane.private import FOLDER

    # the store every env of the app uses (provision.store_kind: ENVPLANE_SECRETS, else the spec's)
    kind = project.environ.get("ENVPLANE_SECRETS") or project.spec.secret_store
    found: list[Secret] = []
    if kind in (None, "file") and not (project.root / FOLDER / DATA_FILE).exists():
        return found  # opening the file store would make its key: reading changes nothing
    try:
        store = open_secret_store(kind, project.root, project.environ, project.app)
        for path in store.list(f"secret/data/{project.app}"):
            found += store.read(path).values()
    except EnvplaneError:
        pass  # a store that is not set up holds nothing to mask
    return found
