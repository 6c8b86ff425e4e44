"""The `photocheck` command: JSON Lines on stdout, progress on stderr.

Only this module and api/settings.py read the environment.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tqdm import tqdm

from .errors import PhotocheckError
from .model import ContentModel
from .pipeline import check_photo
from .policy import Policy, default_policy, load_policy

__all__ = ["iter_image_paths", "main"]

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".heic", ".heif", ".ppm", ".pgm", ".pnm"}
)


def iter_image_paths(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Files as given, and image files found under directories, in a stable order."""
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            for child in sorted(p.rglob("*")):
                if child.is_file() and child.suffix.lower() in IMAGE_SUFFIXES:
                    yield child
        else:
            yield p


def progress(items: Sequence[Any], desc: str) -> Any:
    """A progress bar on stderr when it is a terminal; silent otherwise."""
    return tqdm(items, desc=desc, unit="photo", file=sys.stderr, disable=not sys.stderr.isatty())


def _policy(args: argparse.Namespace) -> Policy:
    path = args.policy or os.environ.get("PHOTOCHECK_POLICY")
    return load_policy(path) if path else default_policy()


def _model(args: argparse.Namespace) -> ContentModel:
    path = args.model or os.environ.get("PHOTOCHECK_MODEL")
    # Load now, so a missing or broken model is one clear error before any photo.
    return (ContentModel(Path(path)) if path else ContentModel()).load()


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def cmd_check(args: argparse.Namespace) -> int:
    policy, model = _policy(args), _model(args)
    files = list(iter_image_paths(args.paths))

    def one(path: Path) -> dict[str, Any]:
        try:
            data = path.read_bytes()
        except OSError as exc:
            return {
                "file": str(path),
                "verdict": "reject",
                "error": f"cannot read file: {exc}",
                "reasons": [],
                "metrics": {},
                "exif": None,
                "hashes": None,
            }
        return {"file": str(path), **check_photo(data, policy=policy, model=model).to_json()}

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = pool.map(one, files)
        for result in tqdm(
            results,
            total=len(files),
            desc="check",
            unit="photo",
            file=sys.stderr,
            disable=not sys.stderr.isatty(),
        ):
            _emit(result)
    return 0


def cmd_dedup(args: argparse.Namespace) -> int:
    from .similarity.dedup import dedup_files

    policy = _policy(args)
    files = list(iter_image_paths(args.paths))

    def note(msg: str) -> None:
        print(f"photocheck dedup: {msg}", file=sys.stderr)

    for pair in dedup_files(
        files, policy=policy, progress=lambda it, d: progress(it, d), note=note
    ):
        _emit(pair)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from api.server import serve

    return serve(host=args.host, port=args.port)


def cmd_drone_add(args: argparse.Namespace) -> int:
    from api.drone_cli import add_folder

    return add_folder(
        list(iter_image_paths(args.paths)),
        policy=_policy(args),
        model=_model(args),
        progress=progress,
        username=args.user,
        radius_m=args.radius,
    )


def cmd_drone_package(args: argparse.Namespace) -> int:
    from api.drone_cli import package_all

    return package_all(Path(args.out), progress=progress)


def cmd_audit_report(args: argparse.Namespace) -> int:
    """The offline audit report, from the service's database (or a synthetic county)."""
    from photocheck.audit.command import write_report

    if args.synthetic:
        url, blobs = None, None
    else:
        from api.settings import Settings

        settings = Settings()
        url, blobs = settings.database_url, settings.blob_config().store("blobs")
    try:
        n = write_report(
            Path(args.out),
            policy=_policy(args),
            database_url=url,
            blobs=blobs,
            county=args.county,
            synthetic=args.synthetic,
            include_photo_reasons=args.all,
            show_progress=sys.stderr.isatty() or args.progress,
        )
    except (ValueError, OSError) as exc:
        print(f"photocheck: {exc}", file=sys.stderr)
        return 2
    print(f"{n} findings written to {args.out}", file=sys.stderr)
    return 0


def cmd_user_add(args: argparse.Namespace) -> int:
    """Create an account; the password is the first line of stdin (never an argument)."""
    from api.accounts import AccountError, add_user
    from api.settings import Settings
    from photocheck.store import Role

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="photocheck", description=__doc__)
    parser.add_argument("--policy", help="policy TOML (default: packaged; env PHOTOCHECK_POLICY)")
    parser.add_argument("--model", help="ONNX model file (default: models/; env PHOTOCHECK_MODEL)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check", help="check photos; one JSON object per file")
    p.add_argument("paths", nargs="+")
    p.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 2)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("dedup", help="pair duplicate photos; one JSON object per pair")
    p.add_argument("paths", nargs="+")
    p.set_defaults(func=cmd_dedup)

    p = sub.add_parser("serve", help="run the HTTP service")
    p.add_argument("--host", default=os.environ.get("PHOTOCHECK_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("PHOTOCHECK_PORT", "8000")))
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("audit", help="county audit tools")
    audit_sub = p.add_subparsers(dest="audit_command", required=True)
    p = audit_sub.add_parser("report", help="write a self-contained HTML audit report")
    p.add_argument("--out", required=True, help="the HTML file to write")
    p.add_argument("--county", help="county name (default: the first one)")
    p.add_argument("--all", action="store_true", help="also list single-photo check reasons")
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except PhotocheckError as exc:
        print(f"photocheck: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `photocheck check DIR | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
