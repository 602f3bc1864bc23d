"""The command line: help, one-line errors with exit codes, credentials masked, migrate and verify."""

from __future__ import annotations

import os
import subprocess
import sys

from leadnorm.devtools.seed import seed_leads


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


def test_unreachable_server_is_one_masked_line(tmp_path):
    out = cli(
        "verify",
        "--uri",
        "mongodb://alice:s3cret@127.0.0.1:1/x?serverSelectionTimeoutMS=300",
        env_extra={"LEADNORM_STATE_DIR": str(tmp_path)},
    )
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("leadnorm: error:")
    assert "s3cret" not in out.stderr + out.stdout and "alice" not in out.stderr + out.stdout


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
