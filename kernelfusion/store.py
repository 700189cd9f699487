"""The artifact store: a content-addressed folder per stage and key, sealed by a manifest,
and one folder per run whose stage names link to them.

A stage's outputs are built in a temporary folder and renamed into place only when complete, so
an interrupted run never leaves an artifact that a later run would trust. The manifest records
the stage's key (its config and its inputs' hashes), package versions, timing and the sha256 of
every file; a stage is reused only when all of these still match. Tensors are stored as
safetensors and everything else as JSON: nothing here unpickles.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from safetensors.torch import save as serialise

from .config import Config
from .progress import status

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_VERSIONED = ("torch", "numpy", "scikit-learn", "umap-learn", "scikit-image", "pillow")


class ArtifactError(RuntimeError):
    """An artifact that is missing, corrupt, or was made from another config."""


class NotCached(ArtifactError):
    """A stage asked of a store opened with `build=False` that has no sealed artifact for it."""


class StorageError(ArtifactError):
    """The runs folder cannot be written (read-only, no permission) or its disk is full: one
    line that says what failed, where, and the fix."""


_READ_ONLY = {
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}
_FULL = {errno.ENOSPC, errno.EDQUOT}


def storage_error(error: OSError, root: Path, stage: str | None = None) -> StorageError | None:
    """The one-line StorageError for an OSError met while writing under the runs folder `root`
    (None when it is another kind of failure, which keeps its own traceback)."""
    shown = str(root)  # the whole path: the user has to find it
    inside = error.filename is None or Path(error.filename).resolve().is_relative_to(
        Path(root).resolve()
    )
    if error.errno in _READ_ONLY and inside:  # not an input that cannot be read
        return StorageError(
            f"cannot write to the runs folder {shown} ({_READ_ONLY[error.errno]}): set "
            "KERNELFUSION_RUNS to a writable folder"
        )
    if error.errno in _FULL:
        where = f" while writing stage {stage}" if stage else ""
        needed = _typical_size(root, stage) if stage else 0
        need = f"needs about {needed / 1e6:.0f} MB more; " if needed else ""
        freeable = prunable_bytes(root)
        return StorageError(
            f"the disk holding the runs folder {shown} is full{where} ({need}`python -m "
            f"kernelfusion cache --prune` frees {freeable / 1e6:.0f} MB, or set "
            "KERNELFUSION_RUNS to a folder on a larger disk)"
        )
    return None


def _os_error(error: BaseException) -> OSError | None:
    """The OSError behind `error`: itself, one it was raised from, or the errno that a
    library's own exception names in its message (torch's and safetensors' writers)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError):
            return seen
        seen = seen.__cause__ or seen.__context__
    text = str(error)
    for code, words in ((errno.ENOSPC, "No space left"), (errno.EROFS, "Read-only file system")):
        if words in text or f"os error {code}" in text:
            return OSError(code, text)
    return None


def _typical_size(root: Path, stage: str) -> int:
    """The largest sealed artifact of `stage` under `root` (0 when there is none): what one
    more of it will take."""
    sizes = [_size(f) for f in (root / STAGES / safe_name(stage)).glob("[!.]*") if f.is_dir()]
    return max(sizes, default=0)


def check_writable(root: str | Path | None = None) -> Path:
    """Fail now, with `StorageError`'s one line, if the runs folder cannot be written: before
    the first chapter or run starts, not half-way through the book."""
    root = Path(root) if root is not None else default_root()
    probe = root / f".write-check.{uuid.uuid4().hex}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"kernelfusion")
        probe.unlink()
    except OSError as error:
        raise storage_error(error, root) or error from None
    return root


def safe_name(name: str) -> str:
    """Return `name` if it is a plain file or folder name; refuse anything that could escape."""
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise ArtifactError(f"{name!r} is not a valid artifact name (letters, digits, _ . - only)")
    return name


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def hash_json(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file and a rename: readers see all or nothing."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with tmp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def package_versions() -> dict[str, str]:
    versions = {}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    try:
        versions["kernelfusion"] = metadata.version("kernelfusion")
    except metadata.PackageNotFoundError:
        versions["kernelfusion"] = "source"
    return versions


def unshared(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`tensors` on the CPU, contiguous, each with storage of its own (copied where shared)."""
    out, seen = {}, set()
    for key, value in tensors.items():
        value = value.detach().cpu().contiguous()
        storage = value.untyped_storage().data_ptr()
        if storage in seen and value.numel():
            value = value.clone()
            storage = value.untyped_storage().data_ptr()
        seen.add(storage)
        out[key] = value
    return out


class StageWriter:
    """Collects one stage's files in its temporary folder. `checkpoints` is a folder that
    survives an interrupted build of the same stage and key (for resuming), and is removed once
    the stage is sealed; it is never part of the artifact."""

    def __init__(self, folder: Path, checkpoints: Path | None = None):
        self.folder = folder
        self.checkpoints = checkpoints if checkpoints is not None else folder / ".checkpoints"

    def path(self, name: str) -> Path:
        return self.folder / safe_name(name)

    def save_tensors(self, name: str, tensors: dict[str, torch.Tensor]) -> None:
        """Save `tensors` as one safetensors file. Tensors that share storage (one tensor under
        two names, or views of one buffer) are written as copies: safetensors refuses shared
        storage, and every stage of every source saves through here."""
        # serialised here and written by Python: a full disk is then an OSError like any other
        self.path(f"{name}.safetensors").write_bytes(serialise(unshared(tensors)))

    def save_json(self, name: str, value: Any) -> None:
        self.path(f"{name}.json").write_text(json.dumps(value, indent=1, sort_keys=True) + "\n")


@dataclass
class Artifact:
    """A sealed stage folder: read its tensors and JSON files by name."""

    folder: Path
    manifest: dict[str, Any]
    reused: bool = False

    @property
    def key_hash(self) -> str:
        return self.manifest["key_hash"]

    def path(self, name: str) -> Path:
        return self.folder / safe_name(name)

    def tensors(self, name: str) -> dict[str, torch.Tensor]:
        return load_file(self.path(f"{name}.safetensors"))

    def json(self, name: str) -> Any:
        return json.loads(self.path(f"{name}.json").read_text())


@dataclass
class Store:
    """The run folder `<root>/<preset>-<config hash>/` of one config."""

    root: Path
    cfg: Config
    timings: dict[str, float] = field(default_factory=dict)
    build: bool = True  # False: only reuse sealed stages, raise NotCached for any other

    @property
    def run_dir(self) -> Path:
        return self.root / self.cfg.run_name

    def stage_dir(self, stage: str) -> Path:
        """The run's name for a stage: a link to the stage's content-addressed folder."""
        return self.run_dir / safe_name(stage)

    def content_dir(self, stage: str, key_hash: str) -> Path:
        """Where the artifact of `stage` with `key_hash` lives, shared by every run whose
        stage has that key (e.g. the data, CNNs and zoo of a GAN ablation's arms)."""
        return self.root / STAGES / safe_name(stage) / key_hash[:KEY_CHARS]

    def load(self, stage: str, key_hash: str | None = None) -> Artifact:
        """Return this run's sealed artifact of `stage`, checking every file against its
        manifest (and its key against `key_hash`, when given). The run's link names the stage
        linked last, whatever torch thread count made it (a chapter and its one-thread workers
        share the run folder); `pipeline.reuse` finds a run by its stages' keys instead."""
        return _verified(self.stage_dir(stage), stage, key_hash)

    def stage(
        self,
        stage: str,
        key: dict[str, Any],
        build: Callable[[StageWriter], None],
        *,
        inputs: Iterable[Artifact] = (),
        force: bool = False,
    ) -> Artifact:
        """Return the artifact of `stage` for `key`: reused if sealed and unchanged, else built.

        `build` writes the stage's files through the writer it is given; the folder appears under
        its final name only after `build` returned and the manifest was written. A process that
        would build a stage another process is building waits for it (a lock per stage and key,
        which the system releases if its holder dies) and reuses its folder: two of chapter
        08's workers made the same layer-1 CycleGAN at once, twice the work, and shared one
        checkpoint folder, which the first to finish removed under the other.
        """
        inputs = list(inputs)
        key_hash = stage_hash(stage, key, inputs)
        folder = self.content_dir(stage, key_hash)
        found = None if force else self._reuse(stage, folder, key_hash)
        if found is not None:
            return found
        if not self.build:
            raise NotCached(f"stage {stage!r} of {self.cfg.run_name} is not cached")
        with self._building(stage, key_hash):
            found = None if force else self._reuse(stage, folder, key_hash)  # sealed meanwhile
            if found is not None:
                return found
            return self._build(stage, key, key_hash, folder, build, inputs, force)

    def _reuse(self, stage: str, folder: Path, key_hash: str) -> Artifact | None:
        """The sealed `folder` of `stage`, linked into this run, if it is there and intact."""
        if not (folder / MANIFEST).is_file():
            return None
        try:
            artifact = _verified(folder, stage, key_hash)
        except ArtifactError as error:
            log.warning("recomputing stage %r: %s", stage, error)
            return None
        log.info("reusing %s", folder)
        self._link(stage, folder)
        return artifact

    @contextlib.contextmanager
    def _building(self, stage: str, key_hash: str, wait: bool = True):
        """Hold the lock on building `stage` for `key_hash`, waiting for its holder; with
        `wait` False, yield False at once instead when another process holds it."""
        lock = self.root / CHECKPOINTS / f".{stage}-{key_hash[:16]}.lock"
        try:
            lock.parent.mkdir(parents=True, exist_ok=True)
            handle = lock.open("a+b")  # held until the build ends
        except OSError as error:
            raise storage_error(error, self.root, stage) or error from None
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            handle.close()  # releases the lock; the empty file stays for the next build

    def _build(self, stage, key, key_hash, folder, build, inputs, force) -> Artifact:
        """Build `stage` into a temporary folder and publish it as `folder` (see `stage`)."""
        started, cpu_started = time.time(), time.process_time()
        status(f"{stage} (seed {self.cfg.seed})")  # until a progress bar says more
        tmp = _temporary(folder)
        try:  # made to sealed in one `try`: an interrupt between any two steps keeps nothing
            self._begin(stage, tmp)
            build(StageWriter(tmp, self._checkpoints(stage, key_hash)))
            # CPU time of all this process's threads: with more processes than cores the wall
            # seconds include waiting for a core, and only this is the work
            spent = (time.time() - started, time.process_time() - cpu_started)
            return self._seal(stage, key, key_hash, folder, tmp, inputs, force, spent)
        except BaseException as error:  # nothing half-written is kept
            self._abandon(stage, tmp, error)
            raise

    def _checkpoints(self, stage: str, key_hash: str) -> Path:
        return self.root / CHECKPOINTS / f"{stage}-{key_hash[:16]}"

    def _begin(self, stage: str, tmp: Path) -> None:
        """Make the temporary folder `tmp` (`_temporary`) of a stage being built."""
        try:
            tmp.parent.mkdir(parents=True, exist_ok=True)
            tmp.mkdir()
        except OSError as error:
            raise storage_error(error, self.root, stage) or error from None

    def _abandon(self, stage: str, tmp: Path, error: BaseException) -> None:
        """Remove a failed build's `tmp`; a full disk or a read-only folder is raised as one
        line naming the fix."""
        shutil.rmtree(tmp, ignore_errors=True)
        said = isinstance(error, StorageError)  # already one line (`_begin`, `_seal`)
        cause = _os_error(error) if isinstance(error, Exception) and not said else None
        fault = storage_error(cause, self.root, stage) if cause is not None else None
        if fault is not None:
            raise fault from None

    def _seal(
        self, stage, key, key_hash, folder, tmp, inputs, force, spent, stacked: int = 1
    ) -> Artifact:
        """Write the manifest of the built `tmp` and publish it as `folder`. `spent`: (wall,
        CPU) seconds of the build; `stacked`: how many stages one build made together (each
        manifest holds its share of the seconds)."""
        seconds, cpu_seconds = spent[0] / stacked, spent[1] / stacked
        try:
            manifest = {
                "stage": stage,
                "key": key,
                "key_hash": key_hash,
                "inputs": {a.manifest["stage"]: a.key_hash for a in inputs},
                "config": self.cfg.to_dict(),
                "versions": package_versions(),
                "threads": torch.get_num_threads(),
                "seconds": round(seconds, 3),
                "cpu seconds": round(cpu_seconds, 3),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "files": {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()},
            }
            if stacked > 1:
                manifest["stacked"] = stacked
            atomic_write_bytes(tmp / MANIFEST, json.dumps(manifest, indent=1).encode())
            winner = _publish(tmp, folder, stage, key_hash, replace=force)
        except BaseException as error:  # nothing half-written is kept
            self._abandon(stage, tmp, error)
            raise
        shutil.rmtree(self._checkpoints(stage, key_hash), ignore_errors=True)
        self._link(stage, folder)
        if winner is not None:  # another process sealed the same stage first: use its files
            return winner
        self.timings[stage] = seconds
        return Artifact(folder, manifest, reused=False)

    def _link(self, stage: str, folder: Path) -> None:
        """Point the run's `stage` name at `folder` (a relative symlink, replaced atomically)."""
        try:
            self._make_link(stage, folder)
        except OSError as error:
            raise storage_error(error, self.root, stage) or error from None

    def _make_link(self, stage: str, folder: Path) -> None:
        link = self.stage_dir(stage)
        link.parent.mkdir(parents=True, exist_ok=True)
        target = os.path.relpath(folder, link.parent)
        if link.is_symlink() and os.readlink(link) == target:
            return
        if link.exists() and not link.is_symlink():  # a stage folder of the old layout
            shutil.rmtree(link)
        tmp = link.with_name(f".{link.name}.{uuid.uuid4().hex}.link")
        os.symlink(target, tmp)
        os.replace(tmp, link)


def _temporary(folder: Path) -> Path:
    """A new name beside `folder` for the temporary folder it is built in."""
    return folder.parent / f".{folder.name}.{uuid.uuid4().hex}.tmp"


STAGES = "stages"  # <root>/stages/<stage>/<key>/: every sealed artifact, shared between runs
CHECKPOINTS = "checkpoints"  # <root>/checkpoints/<stage>-<key>/: resumable partial work
KEY_CHARS = 20  # of the sha256 key: 80 bits, no collision among any realistic number of runs


def _verified(folder: Path, stage: str, key_hash: str | None) -> Artifact:
    """The artifact in `folder`, after checking its manifest, key and every file's sha256."""
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise ArtifactError(f"stage {stage!r} has no complete artifact in {folder}")
    try:
        manifest = json.loads(manifest_path.read_text())
        files = manifest["files"]
        stored_key = manifest["key_hash"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ArtifactError(f"manifest of stage {stage!r} is unreadable: {error}") from error
    if key_hash is not None and stored_key != key_hash:
        raise ArtifactError(
            f"stage {stage!r} in {folder} was made from another config or other inputs"
        )
    for name, digest in files.items():
        path = folder / safe_name(name)
        if not path.is_file() or sha256_file(path) != digest:
            raise ArtifactError(f"file {name!r} of stage {stage!r} is missing or corrupt")
    return Artifact(folder.resolve(), manifest, reused=True)


def _publish(tmp: Path, folder: Path, stage: str, key_hash: str, replace: bool) -> Artifact | None:
    """Rename the sealed `tmp` to `folder`. If `folder` is already there and sound (another
    process won the race), keep it, drop `tmp` and return its artifact; if it is damaged, or
    `replace` is set, swap it out. Returns None when `tmp` became the folder."""
    try:
        os.rename(tmp, folder)  # atomic; fails if `folder` exists and is not empty
        return None
    except OSError:
        if not folder.exists():
            raise
    if not replace:
        try:
            winner = _verified(folder, stage, key_hash)
            shutil.rmtree(tmp, ignore_errors=True)
            return winner
        except ArtifactError:
            pass
    _replace_folder(tmp, folder)
    return None


def _replace_folder(new: Path, final: Path) -> None:
    """Move `new` to `final`, discarding an old `final`; at no point is a partial folder final."""
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.{uuid.uuid4().hex}.old")
        os.replace(final, old)
    os.replace(new, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def stage_hash(stage: str, key: dict[str, Any], inputs: Iterable[Artifact] = ()) -> str:
    """The hash that names a stage's artifact: its name, key and inputs' hashes."""
    return hash_json({"stage": stage, "key": key, "inputs": [a.key_hash for a in inputs]})


@dataclass(frozen=True)
class StageRequest:
    """One stage of one run, as `Store.stage` takes it (without its build)."""

    store: Store
    stage: str
    key: dict[str, Any]
    inputs: tuple[Artifact, ...] = ()


def stage_together(
    requests: list[StageRequest],
    build: Callable[[list[int], list[StageWriter]], None],
) -> list[Artifact | None]:
    """Several stages, of one run or many, made by one call of `build(indices, writers)`
    (`stacked_gans` trains many runs' CycleGANs as one model): each is reused if sealed; one that
    another process is making is left to it (None here: the run that needs it waits for it
    then, as for any stage); the rest are locked, built by the one call (`indices` into
    `requests`, a writer each) and each sealed and published as `Store.stage` does, nothing
    half-written kept. Each manifest says how many were made together ("stacked") and holds
    its share of the build's seconds."""
    results: list[Artifact | None] = [None] * len(requests)
    with contextlib.ExitStack() as held:
        pending: list[tuple[int, str, Path]] = []
        for i, r in enumerate(requests):
            key_hash = stage_hash(r.stage, r.key, r.inputs)
            folder = r.store.content_dir(r.stage, key_hash)
            results[i] = r.store._reuse(r.stage, folder, key_hash)
            if results[i] is not None or any(h == key_hash for _, h, _ in pending):
                continue
            if not held.enter_context(r.store._building(r.stage, key_hash, wait=False)):
                continue  # another process makes it
            results[i] = r.store._reuse(r.stage, folder, key_hash)  # sealed meanwhile
            if results[i] is None:
                pending.append((i, key_hash, folder))
        if not pending:
            return results
        tmps = [_temporary(folder) for _, _, folder in pending]
        started, cpu_started = time.time(), time.process_time()
        try:  # as in `Store._build`: an interrupt at any step leaves nothing half-written
            writers = []
            for tmp, (i, key_hash, _) in zip(tmps, pending, strict=True):
                requests[i].store._begin(requests[i].stage, tmp)
                writers.append(
                    StageWriter(tmp, requests[i].store._checkpoints(requests[i].stage, key_hash))
                )
            build([i for i, _, _ in pending], writers)
            spent = (time.time() - started, time.process_time() - cpu_started)
            for tmp, (i, key_hash, folder) in zip(tmps, pending, strict=True):
                r = requests[i]
                results[i] = r.store._seal(
                    r.stage, r.key, key_hash, folder, tmp, r.inputs, False, spent, len(pending)
                )
        except BaseException as error:
            for tmp in tmps:
                shutil.rmtree(tmp, ignore_errors=True)
            first = requests[pending[0][0]]
            first.store._abandon(first.stage, tmps[0], error)  # a full disk: one line
            raise
    for i, r in enumerate(requests):  # a duplicate of an earlier request: its artifact
        if results[i] is None:
            key_hash = stage_hash(r.stage, r.key, r.inputs)
            folder = r.store.content_dir(r.stage, key_hash)
            results[i] = r.store._reuse(r.stage, folder, key_hash)
    return results


def display_path(path: str | Path) -> str:
    """`path` as a reader of the book should see it: relative to the project checkout or the
    current folder when inside one, else `~/...`, else only its last part; never the build
    machine's absolute path (then the last two parts, e.g. `.../default-faee27b8fa/data`)."""
    path = Path(path).resolve()
    checkout = Path(__file__).resolve().parent.parent
    for base, prefix in ((checkout, ""), (Path.cwd(), ""), (Path.home(), "~/")):
        if path.is_relative_to(base) and path != base:
            return prefix + path.relative_to(base).as_posix()
    return ".../" + "/".join(path.parts[-2:])


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _links(root: Path) -> dict[Path, list[str]]:
    """Content folder -> the runs whose stage names link to it."""
    users: dict[Path, list[str]] = {}
    for link in root.glob("*/*"):
        if link.is_symlink() and link.parent.name not in (STAGES, CHECKPOINTS):
            users.setdefault(link.resolve(), []).append(link.parent.name)
    return users


def cached(root: str | Path | None = None) -> list[dict[str, Any]]:
    """Every sealed stage under `root`: stage, key, size in bytes, when made, seconds it took,
    and the runs that use it (an empty list: no run links to it any more)."""
    root = Path(root) if root is not None else default_root()
    users = _links(root)
    rows = []
    for folder in sorted((root / STAGES).glob("*/*")):
        if folder.name.startswith(".") or not (folder / MANIFEST).is_file():
            continue
        manifest = json.loads((folder / MANIFEST).read_text())
        rows.append(
            {
                "stage": folder.parent.name,
                "key": folder.name,
                "bytes": _size(folder),
                "created": manifest.get("created", ""),
                "seconds": manifest.get("seconds", float("nan")),
                "runs": sorted(users.get(folder.resolve(), [])),
            }
        )
    return rows


def prunable_bytes(root: Path) -> int:
    """What `prune` (unused stages, leftovers, checkpoints) would free under `root`."""
    users = _links(root)
    total = 0
    for folder in (root / STAGES).glob("*/*"):
        leftover = folder.name.startswith(".") and folder.suffix in (".tmp", ".old")
        if leftover or (not folder.name.startswith(".") and folder.resolve() not in users):
            total += _size(folder)
    return total + sum(_size(p) for p in (root / CHECKPOINTS).glob("*") if p.is_dir())


def prune(
    root: str | Path | None = None, *, stages: Iterable[str] = (), unused: bool = True
) -> list[Path]:
    """Delete what is not needed: with `unused`, sealed stages no run links to, and leftovers of
    interrupted builds; every cached stage named in `stages` (and the runs' links to them).
    Returns what was deleted."""
    root = Path(root) if root is not None else default_root()
    names = {safe_name(s) for s in stages}
    users = _links(root)
    doomed = []
    for folder in sorted((root / STAGES).glob("*/*")):
        leftover = folder.name.startswith(".") and folder.suffix in (".tmp", ".old")
        orphan = unused and folder.resolve() not in users and not folder.name.startswith(".")
        if folder.parent.name in names or (unused and leftover) or orphan:
            doomed.append(folder)
    if unused:
        doomed += [p for p in (root / CHECKPOINTS).glob("*") if p.is_dir()]
    for link in root.glob("*/*"):
        if link.is_symlink() and (link.parent.name != STAGES) and link.name in names:
            link.unlink()
    for folder in doomed:
        shutil.rmtree(folder, ignore_errors=True)
    return doomed


def default_root() -> Path:
    """`$KERNELFUSION_RUNS`, else `runs/` beside the source checkout, else `./runs`."""
    if os.environ.get("KERNELFUSION_RUNS"):
        return Path(os.environ["KERNELFUSION_RUNS"])
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file():
        return checkout / "runs"
    return Path.cwd() / "runs"


def open(  # noqa: A001 - mirrors kf.store.open
    cfg: Config, root: str | Path | None = None, *, build: bool = True
) -> Store:
    """Return the store of `cfg`'s run folder under `root` (see `default_root`); with
    `build=False` it only reuses what is cached."""
    return Store(Path(root) if root is not None else default_root(), cfg, build=build)
