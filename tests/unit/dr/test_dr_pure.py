"""The pure parts of disaster recovery: manifests, retention, schedules and alarms, drill
verdicts, command lines, and the spec's `backup:` / `dr:` keys (errors with file:line)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from envplane.commands import backup as cmd
from envplane.dr import manifest as mf
from envplane.dr import retention, schedule
from envplane.dr.config import dr_config
from envplane.dr.drill import CheckResult, judge
from envplane.dr.restore import needs_confirmation
from envplane.errors import SpecError
from envplane.spec.load import load_project
from envplane.spec.models import KeepSpec

T0 = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
RECIPIENT = "age1" + "q" * 58


def manifest(**changes: object) -> mf.Manifest:
    part = mf.Part("postgres", "postgres.dump.zst.age", 30, "ab" * 32,
                   (mf.Chunk(20, "11" * 32), mf.Chunk(10, "22" * 32)), "shop_production")
    base = mf.Manifest(id="20261202T030000Z-a1b2c3", app="shop", env="production", instance="production",
                       started_at=T0, finished_at=T0 + timedelta(seconds=5), parts=(part,),
                       recipients=(RECIPIENT,), tools={"pg_dump": "pg_dump (PostgreSQL) 15.18"},
                       release="v1.0.45")
    return mf.Manifest(**{**base.__dict__, **changes})  # type: ignore[arg-type]


def test_a_manifest_survives_json_and_names_what_differs_by_part_and_chunk() -> None:
    m = manifest(verified_at=T0 + timedelta(seconds=9))
    assert mf.from_json(mf.to_json(m)) == m
    part = m.parts[0]
    assert [start for start, _ in part.offsets()] == [0, 20]
    assert mf.check_chunks(part, part.chunks) is None
    flipped = (part.chunks[0], mf.Chunk(10, "33" * 32))
    assert mf.check_chunks(part, flipped) == (
        "part postgres (postgres.dump.zst.age), chunk 2 of 2: sha256 333333333333… size 10, "
        "the manifest says 222222222222… size 10")
    assert "has 1 chunk(s)" in str(mf.check_chunks(part, part.chunks[:1]))


@pytest.mark.parametrize("broken", [
    b"{}", b"not json", b'{"format": 2}',
    mf.to_json(manifest()).replace(b'"postgres.dump.zst.age"', b'"../../etc/passwd"'),
    mf.to_json(manifest()).replace(b'"size": 30', b'"size": 31'),
])
def test_a_manifest_that_is_not_ours_is_refused(broken: bytes) -> None:
    with pytest.raises(mf.ManifestError):
        mf.from_json(broken)


def test_backup_ids_sort_by_time_and_carry_it() -> None:
    first, second = mf.new_id(T0), mf.new_id(T0 + timedelta(seconds=1))
    assert first < second and mf.valid_id(first) and mf.id_time(first) == T0
    assert not mf.valid_id("../x") and mf.id_time("latest") is None
    assert mf.folder("shop", "pr-7", first) == f"shop/pr-7/{first}"


def test_backup_ids_made_within_one_second_still_sort_by_time() -> None:
    # `restore --from latest` and the listing take the order of the ids: three backups in
    # one second came back in random order (CI, test_dr_backup's retention test).
    made = [mf.new_id(T0 + timedelta(milliseconds=7 * n)) for n in range(40)]
    assert sorted(made) == made
    assert mf.id_time(made[3]) == T0 + timedelta(milliseconds=21)
    assert mf.valid_id("20261202T030000Z-a1b2c3")  # the ids of backups made before


def candidates(days: int, per_day: int = 1, verified: bool = True) -> list[retention.Candidate]:
    return [retention.Candidate(f"d{d:03d}-{n}", T0 - timedelta(days=d, hours=n), verified)
            for d in range(days) for n in range(per_day)]


def test_retention_keeps_last_n_plus_the_newest_of_each_day_week_and_month() -> None:
    decision = retention.decide(candidates(400, per_day=2), KeepSpec(last=3, daily=7, weekly=4, monthly=6))
    assert decision.keep[:3] == ("d000-0", "d000-1", "d001-0")  # last 3
    days = {c for c in decision.keep if c.endswith("-0")}
    assert {f"d{d:03d}-0" for d in range(7)} <= days  # newest of each of 7 days
    assert len(decision.keep) == len(set(decision.keep))
    assert len(decision.keep) <= 3 + 7 + 4 + 6
    assert "d399-1" in decision.delete
    assert decision.why["d000-0"] == "newest verified"


def test_retention_never_deletes_the_newest_good_backup_and_keeps_unverified_newer_ones() -> None:
    good = retention.Candidate("old", T0 - timedelta(days=30), True)
    failed_older = retention.Candidate("older", T0 - timedelta(days=31), False)
    running = retention.Candidate("new", T0, False)
    decision = retention.decide([good, failed_older, running], KeepSpec(last=1, daily=0, weekly=0, monthly=0))
    assert decision.keep == ("new", "old") and decision.delete == ("older",)
    assert retention.decide([running], KeepSpec()).delete == ()  # nothing verified: nothing goes


def facts(**changes: object) -> schedule.EnvFacts:
    base = dict(env="production", every=timedelta(hours=24), rpo=timedelta(hours=24),
                drill_every=timedelta(days=30), active=True, newest_verified=T0 - timedelta(hours=1),
                last_failure=None, last_good_drill=T0 - timedelta(days=1))
    return schedule.EnvFacts(**{**base, **changes})  # type: ignore[arg-type]


def test_a_schedule_that_has_not_succeeded_within_its_interval_is_an_alarm() -> None:
    assert schedule.alarms([facts()], T0) == []
    late = schedule.alarms([facts(newest_verified=T0 - timedelta(hours=25))], T0)
    assert [a.kind for a in late] == ["schedule", "rpo"]
    assert late[0].message == "production's newest verified backup is 1d1h old; its schedule is every 1d"
    never = schedule.alarms([facts(newest_verified=None, last_failure=(T0, "pg_dump failed"))], T0)
    assert [a.kind for a in never] == ["schedule", "failed"]
    assert "never" in schedule.alarms([facts(last_good_drill=None)], T0)[0].message
    assert schedule.alarms([facts(active=False, newest_verified=None)], T0) == []  # nothing to lose
    assert schedule.alarms([facts(every=None)], T0) == []  # no schedule


def test_backups_are_due_when_the_newest_verified_is_as_old_as_the_interval() -> None:
    assert schedule.due([facts(), facts(env="staging", newest_verified=T0 - timedelta(days=2)),
                         facts(env="dr", newest_verified=None, active=False)], T0) == ["staging"]
    assert schedule.span(timedelta(hours=49, minutes=3)) == "2d1h"
    assert schedule.span(timedelta(seconds=61)) == "1m"


def test_a_drill_fails_on_a_missed_target_or_a_failed_check() -> None:
    ok = CheckResult("rows", True, "got '3'")
    assert judge(timedelta(hours=1), timedelta(minutes=5), timedelta(hours=24), timedelta(hours=1), (ok,)) == ()
    missed = judge(timedelta(hours=30), timedelta(hours=2), timedelta(hours=24), timedelta(hours=1),
                   (CheckResult("rows", False, "got '2', expected '3'"),))
    assert [p.split(" ")[0] for p in missed] == ["check", "RPO", "RTO"]


def test_restoring_over_a_running_persistent_env_needs_confirmation() -> None:
    assert needs_confirmation("persistent, backed up", running=True)
    assert not needs_confirmation("persistent", running=False)
    assert not needs_confirmation("cold; restored from backups", running=True)


def test_backup_command_lines_keep_owners_and_put_no_password_in_argv() -> None:
    assert cmd.pg_dump("host=db user=shop dbname=shop") == [
        "pg_dump", "--format=custom", "--compress=0", "--no-owner", "--no-privileges",
        "--dbname=host=db user=shop dbname=shop"]
    assert cmd.pg_restore("dbname=x")[:3] == ["pg_restore", "--single-transaction", "--exit-on-error"]
    assert cmd.tar_create("/data/shop/production") == [
        "tar", "--create", "--file=-", "--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls",
        "--sparse", "--directory=/data/shop/production", "."]
    assert "--same-owner" in cmd.tar_extract("/x") and "--numeric-owner" in cmd.tar_extract("/x")
    assert cmd.age_encrypt(["age1a", "age1b"]) == ["age", "--encrypt", "--recipient", "age1a",
                                                   "--recipient", "age1b"]
    assert cmd.age_decrypt("/k") == ["age", "--decrypt", "--identity", "/k"]
    assert cmd.zstd_compress() == ["zstd", "--quiet", "-3", "-T2", "--stdout"]


def spec(tmp_path: Path, extra: str) -> Path:
    (tmp_path / "compose.yaml").write_text("services:\n  web:\n    image: nginx\n")
    path = tmp_path / "envplane.yaml"
    path.write_text("app: shop\ndomain: example.com\ncompose: compose.yaml\n" + extra)
    return path


@pytest.mark.parametrize(("extra", "message"), [
    ("backup:\n  store: ftp://x\n", "backup.store: must be s3://bucket/prefix or file:///absolute/path "
                                   "(envplane.yaml:5)"),
    ("backup:\n  every: daily\n", "backup.every: must be a number and a unit, e.g. 60s, 24h, 30d (envplane.yaml:5)"),
    ("backup:\n  recipients: [age1short]\n", "backup.recipients: 'age1short'… is not an age recipient "
                                            "(age1…) or an SSH public key (envplane.yaml:5)"),
    ("backup:\n  keep: {last: 0}\n", "backup.keep.last: input should be greater than or equal to 1 "
                                    "(envplane.yaml:5)"),
    ("environments:\n  production:\n    dr:\n      checks:\n        - sql: select 1\n",
     "environments.production.dr.checks[0]: a `sql:` check needs `expect:` (the first column of the "
     "first row) (envplane.yaml:8)"),
    ("dr:\n  rto: soon\n", "dr.rto: must be a number and a unit, e.g. 60s, 24h, 30d (envplane.yaml:5)"),
    ("backup:\n  stor: s3://b\n", "backup.stor: unknown key (envplane.yaml:5)"),
])
def test_bad_backup_and_dr_keys_name_file_line_and_field(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(SpecError) as info:
        load_project(spec(tmp_path, extra), {})
    assert [p.render().replace(str(tmp_path) + "/", "") for p in info.value.problems] == [message]


def test_an_env_overrides_the_top_level_keys_it_names(tmp_path: Path) -> None:
    project = load_project(spec(tmp_path, f"backup:\n  store: s3://shop-backups/x\n  recipients: [{RECIPIENT}]\n"
                                "  keep: {last: 3}\n"
                                "environments:\n  staging:\n    backup: {every: 12h}\n"), {})
    staging = dr_config(project, "staging", {"HOME": "/home/me"})
    assert staging.store.bucket == "shop-backups" and staging.store.prefix == "x"
    assert staging.every == timedelta(hours=12) and staging.keep.last == 3
    assert staging.recipients == (RECIPIENT,)
    default = dr_config(load_project(spec(tmp_path, ""), {}), "production", {"HOME": "/home/me"})
    assert default.store.prefix == "/home/me/.local/share/envplane/backups"
    assert default.every == timedelta(hours=24) and default.rpo == timedelta(hours=24)
    assert default.rto == timedelta(hours=1) and default.recipients is None
    assert dr_config(load_project(spec(tmp_path, ""), {}), "staging", {"HOME": "/h"}).every is None


def test_a_recipients_file_with_a_private_key_is_refused(tmp_path: Path) -> None:
    (tmp_path / "keys.txt").write_text("# the team\nAGE-SECRET-KEY-1QQQ\n")
    project = load_project(spec(tmp_path, "backup:\n  recipients: keys.txt\n"), {})
    with pytest.raises(SpecError, match="holds a private age key"):
        dr_config(project, "production", {})
    (tmp_path / "keys.txt").write_text(f"# the team\n{RECIPIENT}\n")
    assert dr_config(project, "production", {}).recipients == (RECIPIENT,)


def test_the_wal_archive_settings_reach_the_store_over_https_from_the_container() -> None:
    from envplane.dr.config import StoreUrl
    from envplane.dr.pitr import repository_of, settings
    from envplane.errors import BackendError
    from envplane.secret import Secret

    store = StoreUrl.parse("s3://shop-backups/nightly", {})
    text = settings(store, "https://localhost:8443", "AK", Secret("SK-secret"), "production", True,
                    timedelta(seconds=60))
    assert "repo1-s3-endpoint=host.docker.internal\n" in text and "repo1-storage-port=8443\n" in text
    assert "repo1-path=/nightly/pitr/platform-production\n" in text and "repo1-s3-uri-style=path\n" in text
    assert "repo1-storage-ca-file=/etc/pgbackrest/ca.pem\n" in text
    assert repository_of(text) == ("host.docker.internal", "shop-backups", "/nightly/pitr/platform-production")
    with pytest.raises(BackendError, match="over HTTPS"):
        settings(store, "http://127.0.0.1:18333", "AK", Secret("SK"), "production", False, timedelta(seconds=60))


def test_pgbackrest_runs_as_postgres_with_its_password_passed_by_name() -> None:
    from envplane.commands import pgbackrest as pgb

    assert pgb.backup("platform-postgres") == [
        "docker", "exec", "--env", "PGPASSWORD", "--user", "postgres", "platform-postgres",
        "pgbackrest", "--stanza=platform", "--type=incr", "backup"]
    restore = pgb.restore_to("postgres:15", "shop_production", "2026-12-02 01:00:00.000000+00")
    assert restore[:7] == ["docker", "run", "--rm", "-i", "--add-host", "host.docker.internal:host-gateway",
                           "--entrypoint"]
    assert restore[-3:] == ["sh", "shop_production", "2026-12-02 01:00:00.000000+00"]
    assert "--archive-mode=off" in pgb.RESTORE_SCRIPT and "--db-include=$1" in pgb.RESTORE_SCRIPT


def test_a_data_folder_on_another_host_is_refused_not_skipped(tmp_path: Path) -> None:
    from envplane.dr.resources import Reach
    from envplane.errors import BackendError
    from envplane.target import resolve

    project = load_project(spec(tmp_path, "hosts:\n  production: {engine: 'ssh://root@10.0.0.9'}\n"), {})
    reach = Reach(project, resolve(project, "production"), {})
    with pytest.raises(BackendError, match=r"runs on .*10\.0\.0\.9.*not implemented yet"):
        reach.data_path()
    assert Reach(project, resolve(project, "staging"), {}).data_path() == Path("/data/shop/staging")
