"""The release as a user installs it: build the wheel, install it into a fresh venv
outside the checkout, check one real photo, serve, and answer an upload over HTTP.

    python scripts/check_release.py [--photo PATH] [--keep]

``.ci/run`` runs it after the tests. It fails (exit 1) when the wheel lacks the
content model or its class list, when ``photocheck check`` gives no verdict, or when
the installed service does not answer an upload with a verdict, or /docs needs a CDN.
Dependencies come from the package index as for any user (pip's cache makes a second
run quick). Prints the wheel size and the install and check times.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
import venv
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PHOTO = ROOT.parent / "shared" / "data" / "buildings" / "opensfm_lund" / "12.jpg"
IN_WHEEL = ("photocheck/models/efficientnet_lite0.onnx", "photocheck/models/imagenet_classes.txt")
ADMIN_PASSWORD = "release-check-county-1"
ADD_ADMIN = ("user", "add", "admin", "--role", "county", "--county", "丹凤县")


def _env(data_dir: Path) -> dict[str, str]:
    """The caller's environment minus anything that would make the checkout win."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTOCHECK_")}
    env.pop("PYTHONPATH", None)
    env["PHOTOCHECK_DATA_DIR"] = str(data_dir)
    return env


def build_wheel(out: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(ROOT)],
        check=True,
    )
    (wheel,) = out.glob("photocheck-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [n for n in IN_WHEEL if n not in names]
    if missing:
        sys.exit(f"the wheel lacks {missing}")
    return wheel


def install(wheel: Path, target: Path) -> Path:
    venv.create(target, with_pip=True, system_site_packages=False)
    python = target / "bin" / "python"
    # --no-compile: no .pyc for all of every dependency; Python compiles what the check
    # imports, as at a user's first start (what is installed is the same)
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-compile"]
    subprocess.run([*pip, str(wheel)], check=True, cwd=target)
    return target / "bin"


def check(bin_dir: Path, photo: Path, env: dict[str, str], cwd: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [str(bin_dir / "photocheck"), "check", str(photo)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
        check=False,
    )
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    if proc.returncode != 0 or len(lines) != 1 or lines[0].get("verdict") not in VERDICTS:
        sys.exit(f"photocheck check failed ({proc.returncode}): {proc.stdout}{proc.stderr}")
    return lines[0]


VERDICTS = {"accept", "review", "reject"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _request(
    url: str, data: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _json(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    status, raw = _request(
        url,
        json.dumps(body).encode(),
        {"Content-Type": "application/json", **(headers or {})},
    )
    return status, json.loads(raw) if raw else None


def _token(base: str, username: str, password: str) -> dict[str, str]:
    form = f"username={username}&password={password}".encode()
    status, raw = _request(
        base + "/auth/token", form, {"Content-Type": "application/x-www-form-urlencoded"}
    )
    if status != 200:
        sys.exit(f"login {username}: {status} {raw!r}")
    return {"Authorization": f"Bearer {json.loads(raw)['access_token']}"}


def _multipart(name: str, filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: image/jpeg\r\n\r\n'
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def serve_and_upload(bin_dir: Path, photo: Path, env: dict[str, str], cwd: Path) -> str:
    """A county account, one household, its verifier's upload: the verdict answered."""
    subprocess.run(
        [str(bin_dir / "photocheck"), *ADD_ADMIN],
        input=ADMIN_PASSWORD + "\n",
        text=True,
        env=env,
        cwd=cwd,
        check=True,
        capture_output=True,
    )
    port = _free_port()
    server = subprocess.Popen(
        [str(bin_dir / "photocheck"), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        root = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if _request(root + "/openapi.json")[0] == 200:
                    break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                err = server.stderr.read() if server.stderr else ""
                sys.exit(f"photocheck serve did not start: {err}")
            time.sleep(0.2)
        _docs_are_local(root)
        base = root + "/api/v1"
        county = _token(base, "admin", ADMIN_PASSWORD)
        csv = "household_id,head_name,town,village,category\nR1,张三,龙驹寨街道,何家村,改造安全\n"
        status, raw = _request(
            base + "/households/import", csv.encode(), {**county, "Content-Type": "text/csv"}
        )
        if status != 200:
            sys.exit(f"import: {status} {raw!r}")
        slip = json.loads(raw)["accounts"][0]
        first = _token(base, slip["username"], slip["password"])
        new = slip["password"] + "-changed"
        status, _ = _json(
            base + "/auth/change-password",
            {"old_password": slip["password"], "new_password": new},
            first,
        )
        if status != 204:
            sys.exit(f"change-password: {status}")
        village = _token(base, slip["username"], new)
        body, ctype = _multipart("file", photo.name, photo.read_bytes())
        status, raw = _request(
            base + "/households/R1/photos", body, {**village, "Content-Type": ctype}
        )
        answer = json.loads(raw)
        if status != 201 or answer.get("verdict") not in VERDICTS:
            sys.exit(f"upload answered {status}: {raw!r}")
        return str(answer["verdict"])
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _docs_are_local(root: str) -> None:
    """/docs from the installed package: every script and stylesheet it names loads
    from this server (no CDN: a county network may have no internet)."""
    status, raw = _request(root + "/docs")
    page = raw.decode()
    refs = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", page)
    remote = [r for r in refs if "://" in r or r.startswith("//")]
    if status != 200 or remote or not refs:
        sys.exit(f"/docs: {status}, remote assets {remote}")
    for ref in refs:
        code, _ = _request(root + ref)
        if code != 200:
            sys.exit(f"/docs asset {ref}: {code}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--photo", type=Path, default=PHOTO)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="photocheck-release-"))
    try:
        t0 = time.perf_counter()
        wheel = build_wheel(tmp / "dist")
        t1 = time.perf_counter()
        bin_dir = install(wheel, tmp / "venv")
        t2 = time.perf_counter()
        env = _env(tmp / "data")
        report = check(bin_dir, args.photo.resolve(), env, tmp)
        t3 = time.perf_counter()
        verdict = serve_and_upload(bin_dir, args.photo.resolve(), env, tmp)
        t4 = time.perf_counter()
        print(
            f"wheel {wheel.name} {wheel.stat().st_size / 1e6:.1f} MB (built in {t1 - t0:.0f} s); "
            f"install {t2 - t1:.0f} s; check {t3 - t2:.1f} s -> {report['verdict']}; "
            f"serve + upload {t4 - t3:.1f} s -> {verdict}; /docs offline"
        )
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
