"""The `photocheck` console script: the library's commands plus the service's.

The service's commands (serve, worker, user, drone, audit report from the service's
database) live here, on the api side, so ``photocheck/`` never imports ``api``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from photocheck import cli

__all__ = ["main"]


def cmd_serve(args: argparse.Namespace) -> int:
    from .server import serve

    return serve(host=args.host, port=args.port, workers=args.workers)


def cmd_worker(args: argparse.Namespace) -> int:
    from .jobs import run_worker

    return run_worker(concurrency=args.concurrency)


def cmd_drone_add(args: argparse.Namespace) -> int:
    from .drone_cli import add_folder

    return add_folder(
        list(cli.iter_image_paths(args.paths)),
        policy=cli.load_policy_arg(args),
        model=cli.load_model(args),
        progress=cli.progress,
        username=args.user,
        radius_m=args.radius,
    )


def cmd_drone_package(args: argparse.Namespace) -> int:
    from .drone_cli import package_all

    return package_all(Path(args.out), progress=cli.progress)


def cmd_audit_report(args: argparse.Namespace) -> int:
    """The offline audit report, from the service's database (or a synthetic county)."""
    from photocheck.audit.command import write_report

    from .settings import Settings

    settings = Settings()
    if args.synthetic:
        url, blobs = None, None
    else:
        url, blobs = settings.database_url, settings.blob_config().store("blobs")
    try:
        n = write_report(
            Path(args.out),
            policy=cli.load_policy_arg(args),
            database_url=url,
            blobs=blobs,
            county=args.county,
            synthetic=args.synthetic,
            include_photo_reasons=not args.without_photo_reasons,
            show_progress=sys.stderr.isatty() or args.progress,
            gps_radius_m=settings.GPS_RADIUS_M,
        )
    except (ValueError, OSError) as exc:
        print(f"photocheck: {exc}", file=sys.stderr)
        return 2
    print(f"{n} findings written to {args.out}", file=sys.stderr)
    return 0


def cmd_user_add(args: argparse.Namespace) -> int:
    """Create an account; the password is the first line of stdin (never an argument)."""
    from photocheck.store import Role

    from .accounts import AccountError, add_user
    from .settings import Settings

    password = sys.stdin.readline().rstrip("\r\n")
    try:
        line = add_user(
            Settings(),
            args.name,
            password,
            role=Role(args.role),
            county=args.county,
            town=args.town,
        )
    except AccountError as exc:
        print(f"photocheck: {exc}", file=sys.stderr)
        return 2
    print(line, file=sys.stderr)
    return 0


def add_service_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="run the HTTP service")
    p.add_argument("--host", default=os.environ.get("PHOTOCHECK_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("PHOTOCHECK_PORT", "8000")))
    p.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("PHOTOCHECK_WORKERS", "1")),
        help="server processes (more than 1 needs PostgreSQL: PHOTOCHECK_DATABASE_URL)",
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("worker", help="run background jobs only (PostgreSQL job queue)")
    p.add_argument("--concurrency", type=int, default=2, help="jobs run at once")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("audit", help="county audit tools")
    audit_sub = p.add_subparsers(dest="audit_command", required=True)
    p = audit_sub.add_parser("report", help="write a self-contained HTML audit report")
    p.add_argument("--out", required=True, help="the HTML file to write")
    p.add_argument("--county", help="county name (default: the first one)")
    p.add_argument("--all", action="store_true", help=argparse.SUPPRESS)  # now the default
    p.add_argument(
        "--without-photo-reasons",
        action="store_true",
        help="leave out the upload check's own reasons (the page lists them)",
    )
    p.add_argument("--synthetic", type=int, metavar="N", help="demo: a synthetic county of N")
    p.add_argument("--progress", action="store_true", help="progress bar even when piped")
    p.set_defaults(func=cmd_audit_report)

    p = sub.add_parser("drone", help="drone photos of shared sites (service data folder)")
    drone_sub = p.add_subparsers(dest="drone_command", required=True)
    p = drone_sub.add_parser("add", help="store photos at the nearest registered site")
    p.add_argument("paths", nargs="+", metavar="FOLDER")
    p.add_argument("--user", help="county account the photos are recorded under")
    p.add_argument("--radius", type=float, help="metres (default: policy area.site_radius_m)")
    p.set_defaults(func=cmd_drone_add)
    p = drone_sub.add_parser("package", help="write every village's drone package")
    p.add_argument("--out", required=True, help="folder for the zip files")
    p.set_defaults(func=cmd_drone_package)

    p = sub.add_parser("user", help="manage accounts of the service")
    user_sub = p.add_subparsers(dest="user_command", required=True)
    p = user_sub.add_parser("add", help="create an account; password read from stdin")
    p.add_argument("name")
    p.add_argument("--role", choices=["county", "town"], default="county")
    p.add_argument("--county", help="county name (created if new; default: the only one)")
    p.add_argument("--town", help="town name, for --role town")
    p.set_defaults(func=cmd_user_add)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.main(argv, extend=add_service_commands)


if __name__ == "__main__":
    sys.exit(main())
