"""`python -m leadnorm`: the command-line door to the same library the DAGs call."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import NoReturn

from leadnorm.config import backups_dir, mask_uri, uri_has_password
from leadnorm.errors import ConfigError, LeadnormError

log = logging.getLogger("leadnorm")

EXIT_INTERRUPTED = 130  # what a shell reports for a process ended by SIGINT


class _Parser(argparse.ArgumentParser):
    """Bad arguments are one line too (usage stays in --help), so a log of unattended runs reads cleanly."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, got {value}")
    return value


def _sizes(text: str) -> list[int]:
    """`20000` or `20000,100000`: each a positive whole number, in increasing order."""
    sizes = [_positive_int(part) for part in text.split(",")]
    if sizes != sorted(set(sizes)):
        raise argparse.ArgumentTypeError(f"expected increasing sizes, got {text!r}")
    return sizes


def _port(text: str) -> int:
    value = _positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"expected a port up to 65535, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected more than 0 seconds, got {text!r}")
    return value


def _db_name(text: str) -> str:
    from leadnorm.mongo import check_db_name

    try:
        return check_db_name(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _uri_file(path: str) -> str:
    """The URI a file holds: unlike --uri, it never shows in the process list."""
    try:
        uri = Path(path).read_text().rstrip()
    except (OSError, UnicodeDecodeError) as exc:
        raise argparse.ArgumentTypeError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if not uri:
        raise argparse.ArgumentTypeError(f"{path} is empty")
    return uri


def _age(text: str) -> timedelta:
    from leadnorm.steps.runstore import parse_age

    try:
        return parse_age(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_server_timeout(parser: argparse.ArgumentParser, default) -> None:
    parser.add_argument(
        "--server-timeout",
        type=_seconds,
        default=default,
        metavar="SECONDS",
        help="give up on an unreachable MongoDB after this long (5); "
        "a reply mid-run may take 24 times as long, at least 120 s",
    )


def _add_database_args(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--uri", help="MongoDB URI (default: $MONGO_URI, else the embedded server); other users see it in ps"
    )
    source.add_argument("--uri-file", type=_uri_file, metavar="PATH", help="read the MongoDB URI from this file")
    parser.add_argument("--db", type=_db_name, help="database (default: the URI's path, else jazon_ai_sdr)")
    # SUPPRESS: a default here would overwrite a --server-timeout given before the command
    _add_server_timeout(parser, argparse.SUPPRESS)


def _database(args: argparse.Namespace):
    from leadnorm.mongo import connect

    if args.uri and uri_has_password(args.uri):
        print(
            "leadnorm: warning: the password in --uri is visible to every local user in the process list; "
            "use MONGO_URI or --uri-file",
            file=sys.stderr,
        )
    return connect(args.uri or args.uri_file, args.db, args.server_timeout)


# --- mongo -----------------------------------------------------------------


def _mongo_start(args: argparse.Namespace) -> int:
    from leadnorm.devtools import server

    running = server.start(port=args.port, data_dir=Path(args.data) if args.data else None)
    print(running.uri)
    return 0


def _mongo_stop(args: argparse.Namespace) -> int:
    from leadnorm.devtools import server

    stopped = server.stop()
    print(f"stopped pid {stopped.pid}" if stopped else "not running")
    return 0


def _mongo_status(args: argparse.Namespace) -> int:
    from leadnorm.devtools import server

    running = server.running_server()
    if running is None:
        print("not running")
        return 3
    state = "running" if server.ping(running.uri) else "not answering"
    print(f"{state}: {running.uri} (pid {running.pid}, data {running.data_dir})")
    return 0 if state == "running" else 3


# --- seed ------------------------------------------------------------------


def _seed(args: argparse.Namespace) -> int:
    from leadnorm.devtools.seed import seed_leads

    db = _database(args)
    summary = seed_leads(db, args.leads, seed=args.seed, drop=args.drop)
    print(summary.render())
    return 0


# --- bench -------------------------------------------------------------------


def _bench(args: argparse.Namespace) -> int:
    from leadnorm.bench import bench, bench_client_only, marginal, render, render_client_only, write_report

    command = "python -m leadnorm " + " ".join(a for a in sys.argv[1:] if not a.startswith("mongodb"))
    if args.client_only:
        figures = bench_client_only(args.leads, args.seed)
        path = write_report(figures, command, render_client_only(figures))
        print(json.dumps(figures) if args.json else f"{render_client_only(figures)}\n\nreport: {path}")
        return 0
    uri = args.uri or args.uri_file or os.environ.get("MONGO_URI")  # else a fresh embedded server
    sizes = [bench(uri, leads, args.runs, args.seed, args.naive_leads, args.refresh_percent) for leads in args.leads]
    figures = (
        sizes[0]
        if len(sizes) == 1
        else {
            "sizes": sizes,
            "marginal_cpu_ms_per_lead": marginal(
                [{"leads": f["leads"], "cpu": f["client_cpu_ms_per_lead"] * f["leads"] / 1000} for f in sizes], "cpu"
            ),
        }
    )
    text = "\n\n".join(render(f) for f in sizes) + "".join(
        f"\n\nmarginal CPU {step['from']:,} -> {step['to']:,} leads: {step['ms_per_lead']} ms/lead"
        for step in figures.get("marginal_cpu_ms_per_lead", [])
    )
    path = write_report(figures, command, text)
    print(json.dumps(figures) if args.json else f"{text}\n\nreport: {path}")
    return 0


# --- migrate / verify ------------------------------------------------------


def _migrate(args: argparse.Namespace) -> int:
    """`migrate` and `refresh`: the same steps; a refresh first looks whether anything changed."""
    from leadnorm.mongo import require_source

    db = _database(args)
    require_source(db)
    from leadnorm.steps import layout
    from leadnorm.steps.changes import detect_changes, nothing_changed
    from leadnorm.steps.housekeeping import prune_backups
    from leadnorm.steps.lock import hold_lock
    from leadnorm.steps.pipeline import migrate  # pandas & co: only once the server answers
    from leadnorm.steps.runstore import RunFolder
    from leadnorm.steps.summary import summary

    backup_dir = Path(args.backup_dir) if args.backup_dir else backups_dir()
    with hold_lock(db, args.command):
        changes, found = None, None
        if args.command == "refresh":
            started = time.perf_counter()
            changes = detect_changes(db)
            found = {"detect": time.perf_counter() - started, "change_detection": changes.detection}
            print(changes.render())
            if nothing_changed(db, changes, dry_run=args.dry_run):
                print("refresh: nothing changed, nothing written")
                if args.timings_json:
                    Path(args.timings_json).write_text(json.dumps(found))
                return 0
        run = RunFolder.new(command=args.command)
        try:
            _, report = migrate(
                db,
                batch_size=args.batch_size,
                dry_run=args.dry_run,
                backup_dir=backup_dir,
                skip_validation=args.skip_validation,
                run=run,
                changes=changes,
                partitions=args.partitions,
            )
        except BaseException as exc:
            _print_summary_of_failed(run, args.dry_run)
            exc.add_note(_kept(run))
            raise
        print(summary(run, dry_run=args.dry_run))
        if args.timings_json:
            timings = {**(found or {}), **(run.read_result(layout.Results.TIMINGS) or {})}
            Path(args.timings_json).write_text(json.dumps(timings))
        if report is not None and not report.ok:
            _error("verification failed: " + "; ".join(report.problems()), _kept(run))
            return 1
        run.remove()
        if not args.dry_run:
            for pruned in prune_backups(backup_dir, db.name, keep=args.keep):
                log.info("pruned backup %s", pruned)
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from leadnorm.steps.lock import hold_lock
    from leadnorm.steps.rollback import latest_backup, rollback

    db = _database(args)
    backup_dir = Path(args.backup_dir) if args.backup_dir else backups_dir()
    folder = Path(args.backup) if args.backup else latest_backup(backup_dir, db.name)
    with hold_lock(db, "rollback"):
        result = rollback(db, folder, keep_locks=True)
    print(result.render())
    return 0


def _cleanup(args: argparse.Namespace) -> int:
    from leadnorm.steps.cleanup import run_cleanup
    from leadnorm.steps.lock import hold_lock

    db = _database(args)
    with hold_lock(db, "cleanup"):
        result = run_cleanup(db, args.confirm, Path(args.backup_dir) if args.backup_dir else None)
    print(result.render())
    return 0


def _print_summary_of_failed(run, dry_run: bool) -> None:
    """What the run did before it failed; a summary that fails itself must not hide the run's own error."""
    from leadnorm.steps.summary import summary

    try:
        print(summary(run, dry_run=dry_run), flush=True)
    except Exception:
        log.debug("no summary of the failed run", exc_info=True)


def _kept(run) -> str:
    return f"run folder kept for the retry: {run.root}"


def _ingest_csv(args: argparse.Namespace) -> int:
    """Exit 2, writing nothing, when the file is unreadable or lacks a column; rejected rows are
    reported by line number and the rest is loaded (exit 0)."""
    from leadnorm.errors import UploadError
    from leadnorm.steps.ingest import check_file, ingest_csv
    from leadnorm.steps.lock import hold_lock

    path = Path(args.file)
    try:
        check_file(path)  # before connecting: a bad file needs no server
    except UploadError as exc:
        _error(str(exc))
        return 2
    db = _database(args)
    with hold_lock(db, "ingest-csv"):
        result = ingest_csv(db, path, checked=True)  # logs each rejected row with its line and reason
    print(result.render())
    return 0


def _verify(args: argparse.Namespace) -> int:
    from leadnorm.mongo import require_source

    db = _database(args)
    require_source(db)
    from leadnorm.steps.pipeline import verify_database

    report = verify_database(db, args.batch_size)
    print(report.render())
    return 0 if report.ok else 1


# --- staging ---------------------------------------------------------------


def _staging_list(args: argparse.Namespace) -> int:
    from leadnorm.config import staging_location
    from leadnorm.steps.runstore import list_runs

    runs = list_runs()
    if not runs:
        print(f"no run folders in {staging_location()}")
        return 0
    rows = [("path", "command", "age", "size", "steps saved")]
    rows += [(str(r.path), r.command, _duration(r.age), _size(r.size_bytes), ", ".join(r.steps) or "-") for r in runs]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])
    return 0


def _staging_prune(args: argparse.Namespace) -> int:
    from leadnorm.steps.runstore import prune

    removed = prune(args.older_than)
    for run in removed:
        print(f"removed {run.path} ({run.command}, {_duration(run.age)} old, {_size(run.size_bytes)})")
    if not removed:
        print(f"no run folders older than {_duration(args.older_than)}")
    return 0


def _duration(age: timedelta) -> str:
    """`3d 4h`, `2h 5m`, `7m 0s`, `40s`: the two largest units are enough to judge a run folder."""
    seconds, parts = max(int(age.total_seconds()), 0), []
    for unit_seconds, unit in ((86400, "d"), (3600, "h"), (60, "m"), (1, "s")):
        value, seconds = divmod(seconds, unit_seconds)
        if value or parts:
            parts.append(f"{value}{unit}")
    return " ".join(parts[:2]) or "0s"


def _size(size_bytes: int) -> str:
    if size_bytes < 1000:
        return f"{size_bytes} B"
    size = size_bytes / 1000
    for unit in ("kB", "MB"):
        if size < 1000:
            return f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


# --- reports ---------------------------------------------------------------


def _reports_serve(args: argparse.Namespace) -> int:
    from leadnorm.config import reports_dir
    from leadnorm.quality.datadocs import serve

    directory = reports_dir()
    server, url = serve(directory, args.port)
    print(f"serving {directory}: {url}  (Ctrl-C stops)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.shutdown()
    return 0


def build_parser() -> argparse.ArgumentParser:
    from leadnorm.mongo import SERVER_TIMEOUT_S

    parser = _Parser(
        prog="python -m leadnorm",
        description="Migrate nested Jazon AI SDR leads into nine normalized MongoDB collections.",
        epilog="Exit codes: 0 done, 1 failed (one line on stderr), 2 bad arguments, 130 interrupted.",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="debug logging, and tracebacks of unexpected errors"
    )
    _add_server_timeout(parser, SERVER_TIMEOUT_S)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    mongo = commands.add_parser("mongo", help="start, stop or check the embedded MongoDB (SecantusDB)")
    mongo_commands = mongo.add_subparsers(dest="mongo_command", required=True, metavar="ACTION")
    start = mongo_commands.add_parser("start", help="start it on 127.0.0.1 and print its URI")
    start.add_argument("--port", type=_port, help="port (default: a free one)")
    start.add_argument("--data", help="data directory (default: .leadnorm/mongo-data)")
    start.set_defaults(run=_mongo_start)
    mongo_commands.add_parser("stop", help="stop it").set_defaults(run=_mongo_stop)
    mongo_commands.add_parser("status", help="say whether it runs").set_defaults(run=_mongo_status)

    seed = commands.add_parser("seed", help="write synthetic nested leads into the source collection")
    seed.add_argument("--leads", type=_positive_int, required=True, help="how many nested leads")
    seed.add_argument("--seed", type=int, default=0, help="random seed: same seed, same leads")
    seed.add_argument("--drop", action="store_true", help="replace a non-empty leads collection")
    _add_database_args(seed)
    seed.set_defaults(run=_seed)

    migrate = commands.add_parser("migrate", help="back up, then migrate nested leads into the nine collections")
    _add_database_args(migrate)
    migrate.add_argument("--dry-run", action="store_true", help="write nothing; report what would be written")
    migrate.add_argument("--batch-size", type=_positive_int, default=1000, help="documents per batch (1000)")
    migrate.add_argument("--backup-dir", help="where backups go (default: backups/)")
    migrate.add_argument(
        "--skip-validation", action="store_true", help="load without the Great Expectations gate (not recommended)"
    )
    migrate.set_defaults(run=_migrate)

    refresh = commands.add_parser(
        "refresh", help="bring the nine collections in step with the source: nothing written when nothing changed"
    )
    _add_database_args(refresh)
    refresh.add_argument("--dry-run", action="store_true", help="write nothing; report what would be written")
    refresh.add_argument("--batch-size", type=_positive_int, default=1000, help="documents per batch (1000)")
    refresh.add_argument("--backup-dir", help="where backups go (default: backups/)")
    refresh.add_argument("--skip-validation", action="store_true", help="load without the gate (not recommended)")
    for command in (migrate, refresh):
        command.add_argument("--keep", type=_positive_int, default=10, help="backups kept per database (10)")
        command.add_argument("--timings-json", help="write the seconds each step took to this file (for bench)")
        command.add_argument(
            "--partitions",
            type=_positive_int,
            default=1,
            help="split the source into this many _id ranges, staged one after the other (1)",
        )
    refresh.set_defaults(run=_migrate)

    bench = commands.add_parser(
        "bench", help="this migration beside the naive per-lead one and the I/O floor, on fresh databases"
    )
    source = bench.add_mutually_exclusive_group()
    source.add_argument("--uri", help="MongoDB URI (default: $MONGO_URI, else a fresh embedded server)")
    source.add_argument("--uri-file", type=_uri_file, metavar="PATH", help="read the MongoDB URI from this file")
    bench.add_argument(
        "--leads", type=_sizes, default=[20000], help="nested leads to seed (20000); several (20000,100000): each"
    )
    bench.add_argument(
        "--client-only", action="store_true", help="no server: the pipeline into a null sink, the source generated"
    )
    bench.add_argument("--runs", type=_positive_int, default=1, help="runs; figures are their medians (1)")
    bench.add_argument("--seed", type=int, default=5, help="random seed of the generated leads (5)")
    bench.add_argument("--naive-leads", type=_positive_int, default=1000, help="leads the naive run migrates (1000)")
    bench.add_argument(
        "--refresh-percent", type=float, default=0.0, metavar="P", help="also time a refresh after P%% changed"
    )
    bench.add_argument("--json", action="store_true", help="print one JSON line instead of the table")
    bench.set_defaults(run=_bench)

    rollback = commands.add_parser(
        "rollback", help="restore the source from a backup and remove everything the migrations wrote"
    )
    _add_database_args(rollback)
    which = rollback.add_mutually_exclusive_group()
    which.add_argument("--backup", help="a backup folder (default: the latest of this database)")
    which.add_argument("--backup-dir", help="where to look for the latest backup (default: backups/)")
    rollback.set_defaults(run=_rollback)

    cleanup = commands.add_parser(
        "cleanup", help="delete the nested leads marked _migrated, after a backup and a passing verify"
    )
    _add_database_args(cleanup)
    cleanup.add_argument("--confirm", required=True, metavar="DB", help="the database name, to confirm")
    cleanup.add_argument("--backup-dir", help="where the backup goes (default: backups/)")
    cleanup.set_defaults(run=_cleanup)

    ingest = commands.add_parser(
        "ingest-csv", help="load a CSV of leads (name, title, company, email[, linkedin_url, phone, domain])"
    )
    ingest.add_argument("file", help="the CSV file; its header is line 1")
    _add_database_args(ingest)
    ingest.set_defaults(run=_ingest_csv)

    verify = commands.add_parser("verify", help="reconcile source and target without writing anything")
    _add_database_args(verify)
    verify.add_argument("--batch-size", type=_positive_int, default=1000, help="documents per batch (1000)")
    verify.set_defaults(run=_verify)

    staging = commands.add_parser("staging", help="list or prune the run folders failed runs left behind")
    staging_commands = staging.add_subparsers(dest="staging_command", required=True, metavar="ACTION")
    staging_commands.add_parser("list", help="path, command, age, size and steps saved of each").set_defaults(
        run=_staging_list
    )
    prune = staging_commands.add_parser("prune", help="remove the run folders older than an age")
    prune.add_argument("--older-than", type=_age, required=True, metavar="AGE", help="7d, 12h, 30m or 90s")
    prune.set_defaults(run=_staging_prune)

    reports = commands.add_parser("reports", help="serve the validation reports (Data Docs)")
    reports_commands = reports.add_subparsers(dest="reports_command", required=True, metavar="ACTION")
    serve = reports_commands.add_parser("serve", help="serve reports/ on 127.0.0.1 and print the URL")
    serve.add_argument("--port", type=_port, default=0, help="port (default: a free one)")
    serve.set_defaults(run=_reports_serve)
    return parser


def _error(message: str, *notes: str) -> None:
    """The one line a failure prints: masked, first line only, then where its run folder was kept."""
    first_line = (mask_uri(message).splitlines() or ["unknown error"])[0]
    print("; ".join([f"leadnorm: error: {first_line}", *notes]), file=sys.stderr)


def _notes(exc: BaseException) -> list[str]:
    return getattr(exc, "__notes__", [])


def _uri_for_messages(args: argparse.Namespace) -> str | None:
    from leadnorm.mongo import resolve_uri

    try:
        return resolve_uri(getattr(args, "uri", None) or getattr(args, "uri_file", None))
    except LeadnormError:
        return None


def exit_now(code: int) -> NoReturn:
    """Exit with `code`, logs and output flushed, without the interpreter's teardown: after an
    interrupt the teardown was seen to end the process by the signal itself (-2) instead, and
    after a finished command it only costs time (over half a second once GX is loaded)."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


class _Interrupts:
    """Ctrl-C, remembered: DuckDB turns an interrupt inside a query into an error of its own
    ("Query interrupted", or an error reading an Arrow object), and may finish the query and
    drop it; the command still ends as interrupted (130), whatever the step made of it."""

    seen = False

    @classmethod
    def handle(cls, signum, frame) -> None:
        cls.seen = True
        raise KeyboardInterrupt


def _interrupted(exc: BaseException | None) -> NoReturn:
    notes = _notes(exc) if exc is not None else ["the run had finished; its output is above"]
    print("; ".join(["leadnorm: interrupted", *notes]), file=sys.stderr)
    exit_now(EXIT_INTERRUPTED)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    log.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _Interrupts.handle)
    try:
        code = args.run(args)
    except KeyboardInterrupt as exc:
        _interrupted(exc)
    except Exception as exc:
        if _Interrupts.seen:
            _interrupted(exc)
        return _failed(args, exc)
    if _Interrupts.seen:
        _interrupted(None)
    return code


def _failed(args: argparse.Namespace, exc: Exception) -> int:
    """The one line of a failed command, and its exit code."""
    from pymongo.errors import PyMongoError

    from leadnorm.mongo import describe_error

    if isinstance(exc, PyMongoError):  # connect() succeeded: the server failed mid-run
        _error(describe_error(exc, _uri_for_messages(args), args.server_timeout), *_notes(exc))
    elif isinstance(exc, LeadnormError | OSError):
        _error(str(exc), *_notes(exc))
    elif args.verbose:
        raise exc
    else:
        _error(f"unexpected {type(exc).__name__}: {exc} (rerun with -v for the traceback)", *_notes(exc))
    return 1
