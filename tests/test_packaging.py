"""Installs: a wheel (``pip install dist/*.whl``, not editable) carries its default model and
``realtime-me --demo`` finds it from any folder; an editable install keeps using ``models/``.

Each test builds from a copy of the sources in tmp_path (the checkout is left alone) into a
fresh venv, installed with ``--no-deps``: the project venv's packages are made visible through
a ``.pth`` file instead of being installed again, so nothing is downloaded.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _source_copy(dest: Path) -> Path:
    """What a source distribution holds: the package, the shipped weights, the build config."""
    dest.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    for name in ("realtime_me", "models"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def _pip(*args: str, cwd: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args],
                       capture_output=True, text=True, cwd=cwd, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


def _fresh_venv(path: Path) -> tuple[Path, Path]:
    """(python, site-packages) of a new venv that sees this venv's packages (torch, setuptools, ...)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=120)
    python = path / "bin" / "python"
    purelib = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  capture_output=True, text=True, check=True).stdout.strip())
    (purelib / "project_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python, purelib


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "REALTIME_ME_ENGINES", "VIRTUAL_ENV")}
    return {**env, "HOME": str(home)}


def _default_weights(python: Path, cwd: Path, env: dict) -> tuple[Path, Path]:
    r = subprocess.run([str(python), "-c", "import realtime_me; from realtime_me.engines import DEFAULT_WEIGHTS; "
                        "print(realtime_me.__file__); print(DEFAULT_WEIGHTS)"],
                       capture_output=True, text=True, cwd=cwd, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    package_file, weights = r.stdout.split()
    return Path(package_file), Path(weights)


def test_wheel_ships_the_default_model_and_the_demo_finds_it(tmp_path):
    src = _source_copy(tmp_path / "src")
    dist = tmp_path / "dist"
    _pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(dist), str(src), cwd=tmp_path)
    (wheel,) = dist.glob("realtime_me-*.whl")

    # Every module of the package and every shipped model folder is in the wheel,
    # the weights byte for byte as in models/ (the source of truth).
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "realtime_me").rglob("*.py") if "__pycache__" not in p.parts}
    assert modules - names == set()
    assert not {n for n in names if n.split("/")[0] in ("testkit", "tests", "benchmarks")}   # support code stays out
    for folder in (ROOT / "models").iterdir():
        for f in ("model.json", "model.safetensors"):
            member = f"realtime_me/_models/{folder.name}/{f}"
            assert member in names
            assert zipfile.ZipFile(wheel).read(member) == (folder / f).read_bytes()

    python, site = _fresh_venv(tmp_path / "venv")
    _pip("--python", str(python), "install", "--no-deps", str(wheel), cwd=tmp_path)
    elsewhere, home = tmp_path / "elsewhere", tmp_path / "home"
    elsewhere.mkdir()
    home.mkdir()
    env = _env(home)
    package_file, weights = _default_weights(python, elsewhere, env)
    assert package_file.is_relative_to(site)  # the installed copy, not the checkout
    assert weights.is_relative_to(site) and (weights / "model.json").is_file() and (weights / "model.safetensors").is_file()

    # The README's first command, from a folder that is not the checkout.
    r = subprocess.run([str(python.parent / "realtime-me"), "--demo", "--as-fast-as-possible", "--quiet"],
                       capture_output=True, text=True, cwd=elsewhere, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "model: medn on " in r.stderr and "Traceback" not in r.stderr
    # An installed package keeps its engine cache in the user's cache folder.
    assert (home / ".cache" / "realtime-me" / "engines").is_dir()


def test_editable_install_uses_the_checkouts_models(tmp_path):
    src = _source_copy(tmp_path / "src")
    python, _ = _fresh_venv(tmp_path / "venv")
    _pip("--python", str(python), "install", "--no-deps", "--no-build-isolation", "-e", str(src), cwd=tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    package_file, weights = _default_weights(python, elsewhere, _env(tmp_path))
    assert package_file == src / "realtime_me" / "__init__.py"
    assert weights == src / "models" / "medn" and (weights / "model.safetensors").is_file()
