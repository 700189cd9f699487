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
import dataclasses
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
        key_hash = hash_json({"stage": stage, "key": key, "inputs": [a.key_hash for a in inputs]})
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
    def _building(self, stage: str, key_hash: str):
        """Hold the lock on building `stage` for `key_hash` (waiting for its holder)."""
        lock = self.root / CHECKPOINTS / f".{stage}-{key_hash[:16]}.lock"
        try:
            lock.parent.mkdir(parents=True, exist_ok=True)
            handle = lock.open("a+b")  # held until the build ends
        except OSError as error:
            raise storage_error(error, self.root, stage) or error from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield
        finally:
            handle.close()  # releases the lock; the empty file stays for the next build

    def _build(self, stage, key, key_hash, folder, build, inputs, force) -> Artifact:
        """Build `stage` into a temporary folder and publish it as `folder` (see `stage`)."""
        tmp = folder.parent / f".{folder.name}.{uuid.uuid4().hex}.tmp"
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            tmp.mkdir()
        except OSError as error:
            raise storage_error(error, self.root, stage) or error from None
        checkpoints = self.root / CHECKPOINTS / f"{stage}-{key_hash[:16]}"
        started, cpu_started = time.time(), time.process_time()
        status(f"{stage} (seed {self.cfg.seed})")  # until a progress bar says more
        try:
            build(StageWriter(tmp, checkpoints))
            seconds = time.time() - started
            # this process's CPU time (all its threads) making the stage: with more processes
            # than cores (the book's background runs beside its chapters) the wall seconds
            # include waiting for a core, and only this is the work
            cpu_seconds = time.process_time() - cpu_started
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
            atomic_write_bytes(tmp / MANIFEST, json.dumps(manifest, indent=1).encode())
            winner = _publish(tmp, folder, stage, key_hash, replace=force)
        except BaseException as error:  # nothing half-written is kept
            shutil.rmtree(tmp, ignore_errors=True)
            cause = _os_error(error) if isinstance(error, Exception) else None
            fault = storage_error(cause, self.root, stage) if cause is not None else None
            if fault is not None:  # a full disk or a read-only folder: one line, the fix
                raise fault from None
            raise
        shutil.rmtree(checkpoints, ignore_errors=True)
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


@dataclass(frozen=True)
class StageSpec:
    """What one stage's cache key is made of: the config sections it reads whole, single fields
    of other sections, fields of those sections it does not read, and its code version (bumped
    when its outputs change for the same config). Every key also holds the seed and the thread
    class (`threads_class`)."""

    sections: tuple[str, ...]
    version: int
    fields: tuple[str, ...] = ()  # "section.field" read from a section not read whole
    leave_out: tuple[str, ...] = ()  # "section.field" of `sections` the stage does not read
    # "section.field" left out while at its default: keys made before the field existed stay
    omit_at_default: tuple[str, ...] = ()


# gan.* settings no CycleGAN stage reads: the functional phase's, and the published source
_NOT_GAN_TRAINING = ("gan.functional_weight", "gan.functional_steps", "gan.source")

# Every stage's key, in one place (the data stage's is `data._data_key`: its section and the
# image generator's version, without a thread class: decoding and drawing use no threads).
STAGE_KEYS: dict[str, StageSpec] = {
    # 2: seeds from derive_seed; 3: trained one model after another on a CPU (`train_each`)
    "sources": StageSpec(("cnn",), 3),
    # 5: published models' accuracy one at a time; 6: trained one after another on a CPU
    "zoo": StageSpec(("cnn", "zoo"), 6),
    # One CycleGAN per layer, each keyed by the settings that layer reads: layer 1 does not
    # read which layers are translated nor the layer-2 alignment (an arm changing only those
    # reuses the reference's layer 1). The functional phase is a stage of its own.
    # 2: the step of issue 24 (batched calls, frozen critics, fused Adam: rounded differently)
    "cyclegan-conv1": StageSpec(
        ("gan",),
        2,
        leave_out=(*_NOT_GAN_TRAINING, "gan.layers", "gan.align_layer2"),
        omit_at_default=("gan.align_outputs", "gan.align_by"),
    ),
    "cyclegan-conv2": StageSpec(
        ("gan",),
        2,
        leave_out=(*_NOT_GAN_TRAINING, "gan.layers"),
        omit_at_default=("gan.align_outputs", "gan.align_by"),
    ),
    # the layers' CycleGANs together. 2: seeds from derive_seed; 3: gathered from the
    # per-layer stages
    "cyclegan": StageSpec(
        ("gan",),
        3,
        leave_out=_NOT_GAN_TRAINING,
        omit_at_default=("gan.align_outputs", "gan.align_by"),
    ),
    # 3: generator_losses with batched calls
    "functional": StageSpec((), 3, fields=("gan.functional_weight", "gan.functional_steps")),
    # the distilled control takes as many steps as the functional phase would; 2: model ids;
    # 3: the oracle trained as a plain module on a CPU (`train_each`)
    "rivals": StageSpec(("fusion", "cnn"), 3, fields=("gan.functional_steps",)),
    "models": StageSpec(("fusion", "cnn"), 5),  # 5: model ids, the stage renamed from fusion
    # 4: the original protocol label-free, its reference on its own images; 5: views = probe
    # computes the linear probe alone (no label-efficiency curve); 6: views = probe scores
    # the generated CNNs and the decisive rivals alone (`evaluate.scored`)
    "metrics": StageSpec(("analysis",), 6),
    "showcase": StageSpec(("analysis",), 2),  # 2: model ids
    "protocol-spread": StageSpec(("analysis",), 3),  # 3: both zoos
}


def stage_key(cfg: Config, stage: str) -> dict[str, Any]:
    """The cache key of `stage` for `cfg`, from its entry in STAGE_KEYS."""
    spec = STAGE_KEYS[stage]
    defaults = Config()
    key: dict[str, Any] = {}
    for name in spec.sections:
        section = dataclasses.asdict(getattr(cfg, name))
        for dotted in spec.leave_out:
            if dotted.startswith(f"{name}."):
                del section[dotted.split(".", 1)[1]]
        for dotted in spec.omit_at_default:
            part, field_name = dotted.split(".", 1)
            if part == name and section[field_name] == getattr(getattr(defaults, part), field_name):
                del section[field_name]
        key[name] = section
    for dotted in spec.fields:
        part, field_name = dotted.split(".", 1)
        key[dotted] = getattr(getattr(cfg, part), field_name)
    return key | {"seed": cfg.seed, "version": spec.version, "threads": threads_class()}


def threads_class() -> str:
    """The part of torch's intra-op thread count that can change a stage's numbers: all of it.
    On the project's 2-core CPU, the source CNNs and the oracle trained at 1 and at 2 threads
    differ in their last bits (oneDNN's convolution splits its weight-gradient reductions by
    thread; with oneDNN off they agree, at 1.7x the training time), so a one-thread worker
    and a two-thread chapter each keep their own stages. Keys made before this rule said
    "1-4" and are made again once."""
    import torch

    return str(torch.get_num_threads())
