"""The engine cache (``engines/``): where it is, TensorRT plans, and files recorded with their key.

``default_cache_dir`` is ``engines/`` of a source checkout, else
``~/.cache/realtime-me/engines`` ($REALTIME_ME_ENGINES overrides both).

A plan is only valid for the exact ONNX graph, TensorRT version, GPU (name and
compute capability), precision, optimisation profile and platform it was built
with (on a Jetson also the L4T release, which pins CUDA/cuDNN). All of these form
the ``PlanKey``; its digest names the plan file, and a JSON sidecar records the key
and the plan's sha256. So:

* a changed key finds no file -> rebuild, with a message naming what changed;
* a truncated or edited plan fails the sha256 check -> rebuild, with a message;
* a plan TensorRT refuses to deserialise -> rebuild, with a message;
never a crash and never a stale engine. The build itself is a callable passed in,
so this logic is tested without a GPU.

A cache folder that cannot be written (``REALTIME_ME_ENGINES=/proc/x``, a read-only
disk) is reported once and the run goes on: what it would have saved goes to a
temporary folder of this process instead (``store_recorded``, ``write_target``),
removed at exit, so the next run builds again. What it already holds is still read.
"""
from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import logging
import os
import platform
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, TypeVar

from ..errors import UserError

log = logging.getLogger(__name__)

T = TypeVar("T")
NV_TEGRA_RELEASE = Path("/etc/nv_tegra_release")


def default_cache_dir() -> Path:
    """``engines/`` of a source checkout; ``~/.cache/realtime-me/engines`` for an installed package
    (override with REALTIME_ME_ENGINES)."""
    env = os.environ.get("REALTIME_ME_ENGINES")
    if env:
        return Path(env)
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file():
        return root / "engines"
    return Path.home() / ".cache" / "realtime-me" / "engines"


def cache_dir_or_default(cache_dir: str | Path | None) -> Path:
    """The engine cache a caller asked for, else ``default_cache_dir()``."""
    return Path(cache_dir) if cache_dir else default_cache_dir()


def l4t_release(path: Path = NV_TEGRA_RELEASE) -> str | None:
    """'R36.3.0' from /etc/nv_tegra_release on a Jetson, None elsewhere."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return None
    m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text)
    return f"R{m.group(1)}.{m.group(2)}" if m else text.strip().splitlines()[0][:80] if text.strip() else None


def platform_tag() -> str:
    return f"{platform.system()}-{platform.machine()}"


@dataclass(frozen=True)
class PlanKey:
    """Everything a serialized TensorRT engine depends on."""

    model: str                 # architecture name, for readable file names
    onnx_sha256: str
    tensorrt: str
    gpu: str
    compute_capability: str
    precision: str
    profile: tuple[int, int, int]   # min, opt, max batch
    platform: str
    l4t: str | None = None

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:20]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["profile"] = list(self.profile)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "PlanKey":
        d = dict(d)
        d["profile"] = tuple(d["profile"])
        return cls(**d)


class PlanCache:
    """Plans as ``<dir>/<model>-<precision>-<digest>.plan`` with a ``.json`` sidecar."""

    def __init__(self, cache_dir: str | Path) -> None:
        self.dir = Path(cache_dir)

    def plan_path(self, key: PlanKey) -> Path:
        return self.dir / f"{key.model}-{key.precision}-{key.digest()}.plan"

    def timing_cache_path(self, key: PlanKey) -> Path:
        """Kernel timings are reusable across models on the same GPU and TensorRT version."""
        tag = re.sub(r"[^A-Za-z0-9]+", "_", f"{key.gpu}-sm{key.compute_capability}-trt{key.tensorrt}")
        return self.dir / f"timing-{tag}.cache"

    def explain_miss(self, key: PlanKey) -> str:
        """Why there is no plan: what differs from the plans cached for the same model."""
        others = []
        for meta in sorted(self.dir.glob(f"{key.model}-*.json")):
            try:
                old = json.loads(meta.read_text()).get("key", {})
            except (OSError, ValueError):
                continue
            changed = [f"{k}: {_short(old.get(k))} -> {_short(v)}" for k, v in key.to_dict().items() if old.get(k) != v]
            if changed:
                others.append(", ".join(changed))
        if not others:
            return "no cached plan for this model yet"
        best = min(others, key=lambda s: s.count(" -> "))
        return f"cached plans were built for something else ({best})"

    def stored_path(self, key: PlanKey) -> Path:
        """Where this key's plan is: in the cache, or in this run's fallback folder if the
        cache could not be written (``plan_path`` when neither holds it)."""
        return next((p for p in read_candidates(self.dir, self.plan_path(key).name) if is_file(p)),
                    self.plan_path(key))

    def load_bytes(self, key: PlanKey) -> bytes | None:
        """The plan's bytes if present and intact; None (after logging why) otherwise."""
        path = self.stored_path(key)
        if not is_file(path):
            log.info("TensorRT plan %s: %s; building", path.name, self.explain_miss(key))
            return None
        data, why = read_recorded(path, key.to_dict())
        if data is None:
            log.warning("TensorRT plan %s: %s; rebuilding", path, why)
        return data

    def store(self, key: PlanKey, plan: bytes) -> Path:
        """Save the plan; returns where it went (see ``store_recorded``)."""
        path, _ = store_recorded(self.dir, self.plan_path(key).name, plan, key.to_dict())
        return path

    def get_or_build(self, key: PlanKey, build: Callable[[], bytes], deserialize: Callable[[bytes], T | None]) -> T:
        """Deserialize the cached plan, or build, store and deserialize a new one.

        ``deserialize`` returns None (or raises) for a plan the runtime refuses; that
        triggers one rebuild. A freshly built plan that still fails is an error.
        """
        data = self.load_bytes(key)
        if data is not None:
            try:
                engine = deserialize(data)
            except Exception as e:  # noqa: BLE001 - any runtime refusal means: rebuild
                log.warning("TensorRT refused cached plan %s (%s); rebuilding", self.plan_path(key).name, e)
                engine = None
            else:
                if engine is None:
                    log.warning("TensorRT refused cached plan %s (null engine); rebuilding", self.plan_path(key).name)
            if engine is not None:
                return engine
        plan = build()
        if not plan:
            raise RuntimeError("TensorRT build returned no plan")
        engine = deserialize(bytes(plan))
        if engine is None:
            raise RuntimeError("TensorRT could not deserialize the plan it just built")
        path = self.store(key, bytes(plan))
        log.info("TensorRT plan saved to %s (%d KB)", path, len(plan) // 1024)
        return engine


def _short(v) -> str:
    """Readable key values in messages: hashes cut to 12 characters."""
    return repr(v[:12] + "...") if isinstance(v, str) and len(v) > 24 else repr(v)


def is_file(path: Path) -> bool:
    """``path.is_file()`` that answers False where the folder cannot even be searched."""
    try:
        return path.is_file()
    except OSError:
        return False


#: cache folders this process found unwritable -> why (each reported once)
_UNWRITABLE: dict[Path, str] = {}
_FALLBACK_ROOT: Path | None = None


def _fallback_dir(cache_dir: Path) -> Path:
    """This process's stand-in for ``cache_dir``: a temporary folder removed at exit."""
    global _FALLBACK_ROOT
    if _FALLBACK_ROOT is None:
        _FALLBACK_ROOT = Path(tempfile.mkdtemp(prefix="realtime-me-engines-"))
        atexit.register(shutil.rmtree, _FALLBACK_ROOT, ignore_errors=True)
    return _FALLBACK_ROOT / hashlib.sha256(str(cache_dir).encode()).hexdigest()[:12]


def _mark_unwritable(cache_dir: Path, err: OSError) -> None:
    if cache_dir in _UNWRITABLE:
        return
    why = f"{err.strerror or err}" + (f": {err.filename}" if getattr(err, "filename", None) else "")
    _UNWRITABLE[cache_dir] = why
    log.warning("engine cache %s cannot be written (%s); this run keeps its engines in a temporary folder "
                "and builds them again next time (use --cache-dir DIR or REALTIME_ME_ENGINES=DIR)", cache_dir, why)


def _key_dir(cache_dir: str | Path) -> Path:
    return Path(os.path.abspath(cache_dir))


def read_candidates(cache_dir: str | Path, rel: str | Path) -> list[Path]:
    """Where ``rel`` of this cache may be: in the cache, then in this run's fallback folder."""
    d = _key_dir(cache_dir)
    return [d / rel] + ([_fallback_dir(d) / rel] if d in _UNWRITABLE else [])


def write_target(cache_dir: str | Path, rel: str | Path, folder: bool = False) -> Path:
    """Where to write ``rel`` (a file, or a folder with ``folder=True``) of this cache: in it
    if a file can be created there, else (reported once) in this run's fallback folder."""
    d = _key_dir(cache_dir)
    target = d / rel
    if d not in _UNWRITABLE:
        parent = target if folder else target.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=parent):
                pass
            return target
        except OSError as e:
            _mark_unwritable(d, e)
    target = _fallback_dir(d) / rel
    try:
        (target if folder else target.parent).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"engine cache {d} cannot be written ({_UNWRITABLE[d]}), nor a temporary folder "
                        f"({e.strerror or e})") from None
    return target


def store_recorded(cache_dir: str | Path, rel: str | Path, data: bytes, key: dict) -> tuple[Path, str]:
    """``write_recorded`` into ``cache_dir / rel``, or into the fallback folder when the cache
    cannot be written (a full disk mid-write included); returns (path, sha256)."""
    path = write_target(cache_dir, rel)
    try:
        return path, write_recorded(path, data, key)
    except OSError as e:
        d = _key_dir(cache_dir)
        if d in _UNWRITABLE:
            raise UserError(f"cannot write a temporary engine file {path} ({e.strerror or e})") from None
        _mark_unwritable(d, e)
        path = write_target(cache_dir, rel)
        try:
            return path, write_recorded(path, data, key)
        except OSError as e2:
            raise UserError(f"engine cache {d} cannot be written ({_UNWRITABLE[d]}), nor a temporary "
                            f"folder ({e2.strerror or e2})") from None


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temp file and rename, so a crash never leaves half a file under the real name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise


def write_recorded(path: Path, data: bytes, key: dict) -> str:
    """Write ``data`` and a ``.json`` record of its key and sha256 beside it; returns the sha256."""
    sha = hashlib.sha256(data).hexdigest()
    atomic_write(path, data)
    record = {"key": key, "sha256": sha, "bytes": len(data)}
    atomic_write(path.with_suffix(".json"), (json.dumps(record, indent=2) + "\n").encode())
    return sha


def read_recorded(path: Path, key: dict, ignore: tuple[str, ...] = ()) -> tuple[bytes | None, str]:
    """``(data, "")`` if ``path`` was written by ``write_recorded`` for this key (the fields in
    ``ignore`` aside) and is intact, else ``(None, why)``: a cache entry that is missing, edited,
    truncated or for other inputs."""
    try:
        record = json.loads(path.with_suffix(".json").read_text())
        data = path.read_bytes()
    except (OSError, ValueError) as e:
        return None, f"unreadable ({e})"
    recorded = record.get("key") if isinstance(record, dict) else None
    if not isinstance(recorded, dict) or _less(recorded, ignore) != _less(key, ignore):
        return None, "its record is for other inputs"
    if hashlib.sha256(data).hexdigest() != record.get("sha256"):
        return None, f"corrupt (sha256 mismatch, {len(data)} bytes)"
    return data, ""


def _less(key: dict, ignore: tuple[str, ...]) -> dict:
    return {k: v for k, v in key.items() if k not in ignore}
