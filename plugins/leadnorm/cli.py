"""`python -m leadnorm`: the command-line door to the same library the DAGs call."""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import threading
from pathlib import Path

from leadnorm.config import mask_uri
from leadnorm.errors import LeadnormError

log = logging.getLogger("leadnorm")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, got {value}")
    return value


def _port(text: str) -> int:
    value = _positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"expected a port up to 65535, got {value}")
    return value


def _add_database_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--uri", help="MongoDB URI (default: $MONGO_URI, else the embedded server)")
    parser.add_argument("--db", help="database (default: the URI's path, else jazon_ai_sdr)")


def _database(args: argparse.Namespace):
    from leadnorm.mongo import connect

    return connect(args.uri, args.db)


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


# --- migrate / verify ------------------------------------------------------


def _migrate(args: argparse.Namespace) -> int:
    from leadnorm.steps.pipeline import RunFolder, migrate, summary

    db = _database(args)
    run = RunFolder.new()
    try:
        _, report = migrate(
            db,
            batch_size=args.batch_size,
            dry_run=args.dry_run,
            backup_dir=Path(args.backup_dir) if args.backup_dir else None,
            skip_validation=args.skip_validation,
            run=run,
        )
    finally:
        if run.root.exists():
            print(summary(run, dry_run=args.dry_run))
    if report is not None and not report.ok:
        print("leadnorm: error: verification failed: " + "; ".join(report.problems()), file=sys.stderr)
        return 1
    shutil.rmtree(run.root, ignore_errors=True)
    return 0


def _verify(args: argparse.Namespace) -> int:
    from leadnorm.steps.pipeline import RunFolder, extract_step, normalize_step, verify_step

    db = _database(args)
    run = RunFolder.new()
    try:
        extract_step(db, run, args.batch_size)
        normalize_step(run)
        report = verify_step(db, run)
    finally:
        shutil.rmtree(run.root, ignore_errors=True)
    print(report.render())
    return 0 if report.ok else 1


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
    parser = argparse.ArgumentParser(
        prog="python -m leadnorm",
        description="Migrate nested Jazon AI SDR leads into nine normalized MongoDB collections.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
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

    verify = commands.add_parser("verify", help="reconcile source and target without writing anything")
    _add_database_args(verify)
    verify.add_argument("--batch-size", type=_positive_int, default=1000, help="documents per batch (1000)")
    verify.set_defaults(run=_verify)

    reports = commands.add_parser("reports", help="serve the validation reports (Data Docs)")
    reports_commands = reports.add_subparsers(dest="reports_command", required=True, metavar="ACTION")
    serve = reports_commands.add_parser("serve", help="serve reports/ on 127.0.0.1 and print the URL")
    serve.add_argument("--port", type=_port, default=0, help="port (default: a free one)")
    serve.set_defaults(run=_reports_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    log.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    from pymongo.errors import PyMongoError

    try:
        return args.run(args)
    except (LeadnormError, PyMongoError, OSError) as exc:
        print(f"leadnorm: error: {mask_uri(str(exc)).splitlines()[0]}", file=sys.stderr)
        return 1
