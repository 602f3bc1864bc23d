"""The command line: help, one-line errors with exit codes, credentials masked, migrate and verify,
interrupts, unreachable servers, mistyped databases, URI files and the staging commands."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

from leadnorm.devtools.seed import seed_leads

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ ")


def cli(*args, env_extra=None):
    env = {**os.environ, **(env_extra or {})}
    env.pop("MONGO_URI", None)
    return subprocess.run(
        [sys.executable, "-m", "leadnorm", *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_help_lists_the_commands():
    out = cli("--help")
    assert out.returncode == 0
    for command in ("mongo", "seed", "migrate", "verify"):
        assert command in out.stdout


def test_bad_arguments_exit_2_with_one_line():
    for args in (["migrate", "--batch-size", "0"], ["seed", "--leads", "abc"], ["nonsense"]):
        out = cli(*args)
        assert out.returncode == 2, args
        assert out.stderr.strip().splitlines()[-1].startswith("python -m leadnorm")


def timed_cli(*args, env_extra=None):
    started = time.monotonic()
    out = cli(*args, env_extra=env_extra)
    return out, time.monotonic() - started


def assert_one_short_failure(out, seconds):
    """Fails within the default 5 s server timeout (plus start-up), in a few lines, no traceback, no password."""
    everything = out.stdout + out.stderr
    assert out.returncode == 1, everything
    assert seconds < 8, f"took {seconds:.1f} s"
    assert len(everything.strip().splitlines()) <= 5, everything
    assert "Traceback" not in everything and "Topology" not in everything
    assert "s3cret" not in everything and "alice" not in everything
    assert out.stderr.strip().splitlines()[-1].startswith("leadnorm: error:")


def test_closed_port_names_host_and_port_in_one_masked_line(tmp_path):
    out, seconds = timed_cli(
        "migrate", "--uri", "mongodb://alice:s3cret@127.0.0.1:1/x", env_extra={"LEADNORM_STATE_DIR": str(tmp_path)}
    )
    assert_one_short_failure(out, seconds)
    assert (
        out.stderr.strip().splitlines()[-1]
        == "leadnorm: error: cannot reach MongoDB at 127.0.0.1:1: connection refused"
    )
    assert "leadnorm: warning:" in out.stderr and "--uri-file" in out.stderr, "no warning about the password in --uri"


def test_unknown_host_says_so(tmp_path):
    out, seconds = timed_cli(
        "verify",
        "--uri",
        "mongodb://alice:s3cret@no-such-host.invalid:27018/x",
        env_extra={"LEADNORM_STATE_DIR": str(tmp_path)},
    )
    assert_one_short_failure(out, seconds)
    assert out.stderr.strip().splitlines()[-1].endswith("no-such-host.invalid:27018: unknown host")


def test_server_timeout_option_global_or_per_command(tmp_path):
    env = {"LEADNORM_STATE_DIR": str(tmp_path)}
    for args in (
        ["--server-timeout", "0.5", "verify", "--uri", "mongodb://127.0.0.1:1"],
        ["verify", "--uri", "mongodb://127.0.0.1:1", "--server-timeout", "0.5"],
    ):
        out, seconds = timed_cli(*args, env_extra=env)
        assert out.returncode == 1 and seconds < 4, (args, seconds, out.stderr)
    assert cli("verify", "--server-timeout", "0", env_extra=env).returncode == 2


def test_a_server_that_accepts_but_never_answers(tmp_path):
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        out, seconds = timed_cli(
            "verify",
            "--uri",
            f"mongodb://127.0.0.1:{port}",
            "--server-timeout",
            "1",
            env_extra={"LEADNORM_STATE_DIR": str(tmp_path)},
        )
    assert out.returncode == 1 and seconds < 5
    assert out.stderr.strip() == f"leadnorm: error: cannot reach MongoDB at 127.0.0.1:{port}: no reply within 1 s"


def test_describe_error_of_a_server_that_stopped_mid_run():
    from pymongo.errors import AutoReconnect, NetworkTimeout

    from leadnorm.mongo import describe_error

    timeout = NetworkTimeout(
        "db1:27017: timed out (configured timeouts: socketTimeoutMS: 120000.0ms, connectTimeoutMS: 5000.0ms)"
    )
    assert describe_error(timeout) == "MongoDB at db1:27017 stopped answering (no reply within 120 s)"
    cancelled = AutoReconnect("operation cancelled")
    assert (
        describe_error(cancelled, "mongodb://u:pw@db1/x", 5)
        == "MongoDB at db1:27017 stopped answering (no reply within 5 s)"
    )
    reset = AutoReconnect("db1:27017: [Errno 104] Connection reset by peer (configured timeouts: socketTimeoutMS: 1ms")
    assert describe_error(reset) == "lost the connection to MongoDB at db1:27017: connection reset by peer"


def test_invalid_database_names_exit_2(tmp_path):
    for name in ("", "a/b", "a.b", "x" * 64, 'a"b', "a$b"):
        out = cli(
            "migrate", "--uri", "mongodb://127.0.0.1:1", "--db", name, env_extra={"LEADNORM_STATE_DIR": str(tmp_path)}
        )
        assert out.returncode == 2, name
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and "--db" in lines[0], out.stderr


def test_mistyped_database_creates_nothing(db, mongo_uri, tmp_path):
    seed_leads(db, 5, seed=1)
    typo = db.name + "x"
    env = {"LEADNORM_STAGING_DIR": str(tmp_path / "staging"), "LEADNORM_REPORTS_DIR": str(tmp_path / "reports")}
    for command in (["migrate", "--backup-dir", str(tmp_path / "b")], ["verify"]):
        out = cli(*command, "--uri", mongo_uri, "--db", typo, env_extra=env)
        assert out.returncode == 1, out.stdout + out.stderr
        assert (
            out.stderr.strip()
            == f"leadnorm: error: database {typo!r} has no leads collection: check the database name (--db)"
        )
        assert "verify: OK" not in out.stdout
        assert typo not in db.client.list_database_names()
    assert not (tmp_path / "b").exists()


def test_database_without_leads_creates_nothing(db, mongo_uri, tmp_path):
    db.leads.insert_one({"note": "not a lead"})
    env = {"LEADNORM_STAGING_DIR": str(tmp_path / "staging"), "LEADNORM_REPORTS_DIR": str(tmp_path / "reports")}
    out = cli("migrate", "--uri", mongo_uri, "--db", db.name, "--backup-dir", str(tmp_path / "b"), env_extra=env)
    assert out.returncode == 1 and "holds no nested or migrated lead" in out.stderr
    assert db.list_collection_names() == ["leads"] and not (tmp_path / "b").exists()


def test_uri_file(db, mongo_uri, tmp_path):
    uri_file = tmp_path / "uri"
    uri_file.write_text(mongo_uri + "\n")
    out = cli("seed", "--leads", "3", "--uri-file", str(uri_file), "--db", db.name)
    assert out.returncode == 0 and "warning" not in out.stderr, out.stderr
    assert db.leads.count_documents({}) == 3
    missing = cli("seed", "--leads", "3", "--uri-file", str(tmp_path / "missing"))
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1
    both = cli("seed", "--leads", "3", "--uri-file", str(uri_file), "--uri", mongo_uri)
    assert both.returncode == 2 and "not allowed" in both.stderr


def test_sigint_during_migrate_is_one_line_and_exit_130(db, mongo_uri, tmp_path):
    seed_leads(db, 3000, seed=1)
    env = {**os.environ, "LEADNORM_STAGING_DIR": str(tmp_path / "staging"), "LEADNORM_REPORTS_DIR": str(tmp_path / "r")}
    args = ["migrate", "--uri", mongo_uri, "--db", db.name, "--backup-dir", str(tmp_path / "b")]
    process = subprocess.Popen(
        [sys.executable, "-m", "leadnorm", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    first_log = process.stderr.readline()  # the first progress line: the run has begun
    time.sleep(2)
    assert LOG_LINE.match(first_log) and process.poll() is None, "migrate ended before the interrupt; seed more leads"
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stdout + stderr
    lines = [line for line in stderr.splitlines() if not LOG_LINE.match(line)]  # progress lines are logs
    assert len(lines) == 1 and lines[0].startswith("leadnorm: interrupted; run folder kept for the retry: "), stderr
    assert os.path.isdir(lines[0].rpartition(": ")[2])


def test_staging_list_and_prune(tmp_path, monkeypatch):
    from leadnorm.steps.runstore import RunFolder

    staging = tmp_path / "staging"
    monkeypatch.setenv("LEADNORM_STAGING_DIR", str(staging))
    env = {"LEADNORM_STAGING_DIR": str(staging)}
    assert cli("staging", "list", env_extra=env).stdout.startswith("no run folders")

    old = RunFolder.new("old-run")
    info = json.loads((old.root / "run.json").read_text())
    info["created_at"] = (datetime.now(UTC) - timedelta(days=10, hours=3)).isoformat()
    (old.root / "run.json").write_text(json.dumps(info))
    old.write_result("extract", {"documents": 1, "batches": 1})
    fresh = RunFolder.new("fresh-run", command="verify")

    listed = cli("staging", "list", env_extra=env)
    assert listed.returncode == 0, listed.stderr
    header, first, second = listed.stdout.strip().splitlines()
    assert header.split() == ["path", "command", "age", "size", "steps", "saved"]
    assert str(old.root) in first and "migrate" in first and "10d 3h" in first and first.endswith("extract")
    assert str(fresh.root) in second and "verify" in second

    pruned = cli("staging", "prune", "--older-than", "7d", env_extra=env)
    assert pruned.returncode == 0 and str(old.root) in pruned.stdout and str(fresh.root) not in pruned.stdout
    assert not old.root.exists() and fresh.root.exists()
    assert cli("staging", "prune", "--older-than", "7d", env_extra=env).stdout.startswith("no run folders older")
    bad = cli("staging", "prune", "--older-than", "seven days", env_extra=env)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_no_server_anywhere_says_how_to_start_one(tmp_path):
    out = cli("verify", env_extra={"LEADNORM_STATE_DIR": str(tmp_path)})
    assert out.returncode == 1 and "mongo start" in out.stderr


def test_migrate_then_verify(db, mongo_uri, tmp_path):
    seed_leads(db, 120, seed=5)
    env = {"LEADNORM_STAGING_DIR": str(tmp_path / "staging"), "LEADNORM_REPORTS_DIR": str(tmp_path / "reports")}
    out = cli("migrate", "--uri", mongo_uri, "--db", db.name, "--backup-dir", str(tmp_path / "b"), env_extra=env)
    assert out.returncode == 0, out.stderr
    assert "verify: OK" in out.stdout and "companies" in out.stdout
    assert list((tmp_path / "b").iterdir()), "no backup taken"
    assert not list((tmp_path / "staging").iterdir()), "staging left behind after success"
    verified = cli("verify", "--uri", mongo_uri, "--db", db.name, env_extra=env)
    assert verified.returncode == 0 and "verify: OK" in verified.stdout

    db.companies.delete_one({})
    broken = cli("verify", "--uri", mongo_uri, "--db", db.name, env_extra=env)
    assert broken.returncode == 1 and "companies" in broken.stdout
