"""The library's commands of `photocheck`: JSON Lines on stdout, progress on stderr.

The console script is ``api.cli:main``: it adds the service's commands (serve,
worker, user, drone, audit) to this parser, so the library never imports ``api``.
Only this module and api/settings.py read the environment.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tqdm import tqdm

from .errors import PhotocheckError
from .model import ContentModel
from .pipeline import check_photo
from .policy import Policy, default_policy, load_policy

__all__ = ["build_parser", "iter_image_paths", "load_model", "load_policy_arg", "main", "progress"]

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


def progress(items: Iterable[Any], desc: str) -> Any:
    """A progress bar on stderr when it is a terminal; silent otherwise."""
    return tqdm(items, desc=desc, unit="photo", file=sys.stderr, disable=not sys.stderr.isatty())


def load_policy_arg(args: argparse.Namespace) -> Policy:
    path = args.policy or os.environ.get("PHOTOCHECK_POLICY")
    return load_policy(path) if path else default_policy()


def load_model(args: argparse.Namespace) -> ContentModel:
    path = args.model or os.environ.get("PHOTOCHECK_MODEL")
    # Load now, so a missing or broken model is one clear error before any photo.
    return (ContentModel(Path(path)) if path else ContentModel()).load()


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def cmd_check(args: argparse.Namespace) -> int:
    policy, model = load_policy_arg(args), load_model(args)
    files = list(iter_image_paths(args.paths))
    for raw in args.paths:  # a folder that gives nothing is said so, not silently skipped
        folder = Path(raw)
        if folder.is_dir() and not any(f.is_relative_to(folder) for f in files):
            suffixes = " ".join(sorted(IMAGE_SUFFIXES))
            print(f"photocheck: no photos in {folder} (looked for {suffixes})", file=sys.stderr)

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

    policy = load_policy_arg(args)
    files = list(iter_image_paths(args.paths))

    def note(msg: str) -> None:
        print(f"photocheck dedup: {msg}", file=sys.stderr)

    for pair in dedup_files(
        files, policy=policy, progress=lambda it, d: progress(it, d), note=note
    ):
        _emit(pair)
    return 0


def build_parser(
    extend: Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None] | None = None,
) -> argparse.ArgumentParser:
    """The parser of the library's commands; ``extend`` adds more subcommands."""
    parser = argparse.ArgumentParser(prog="photocheck", description=__doc__)
    parser.add_argument("--policy", help="policy TOML (default: packaged; env PHOTOCHECK_POLICY)")
    parser.add_argument(
        "--model", help="ONNX model file (default: photocheck/models/; env PHOTOCHECK_MODEL)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check", help="check photos; one JSON object per file")
    p.add_argument("paths", nargs="+")
    p.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 2)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("dedup", help="pair duplicate photos; one JSON object per pair")
    p.add_argument("paths", nargs="+")
    p.set_defaults(func=cmd_dedup)
    if extend is not None:
        extend(sub)
    return parser


def main(
    argv: Sequence[str] | None = None,
    extend: Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None] | None = None,
) -> int:
    args = build_parser(extend).parse_args(argv)
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
