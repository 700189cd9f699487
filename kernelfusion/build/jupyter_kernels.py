"""The chapters' Jupyter kernels, each started while the chapter before it runs.

A chapter's kernel costs seconds that compute nothing: the process starts, imports the package
(torch with it) and, after the last cell, exits. On the project's 2-core CPU (yardstick 103.5 /
109.6, `python -m benchmarks machine`): 0.5 s to start, 2.2 s to import kernelfusion and 1-3 s
to shut down gracefully, about 5 s of each smoke chapter's 4-14 s. Here the next chapter's
kernel starts, and imports the package as it starts (IPython's `exec_lines`: run before the
kernel answers, in no cell and no history), while the chapter before it runs; and a finished
chapter's kernel is asked to shut down and left to exit while the next chapter runs.
"""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from traitlets import default

import kernelfusion

KERNEL = "python3"
# what the chapters import first: the package, whose modules they use (`kf.pipeline`, ...)
WARM_UP = "import " + ", ".join(f"kernelfusion.{name}" for name in kernelfusion.__all__)
# nbclient's own default for the kernels it starts: IPython's history kept in memory (kernels
# alive at once would otherwise share one SQLite file)
HISTORY = "--HistoryManager.hist_file=:memory:"


def ipc_manager(stderr_log: Path | None = None) -> type[AsyncKernelManager]:
    """A kernel manager whose kernels talk over local Unix sockets (IPC) in a temporary folder,
    not over TCP on localhost: no port is opened, and ipykernel has no reason to print its
    'running over TCP without encryption' warning once per chapter. With `stderr_log`, the
    kernel's own stderr (its shutdown chatter after a failed cell) goes to that file, not
    between the terminal's lines. It keeps the clients made for its kernel (`clients`), so
    that whoever shuts the kernel down can close their channels."""

    class IpcKernelManager(AsyncKernelManager):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.clients: list = []

        @default("transport")
        def _default_transport(self) -> str:
            return "ipc"

        @default("ip")
        def _default_ip(self) -> str:
            return str(Path(tempfile.gettempdir()) / f"kernelfusion-{uuid.uuid4().hex[:12]}")

        async def _async_launch_kernel(self, kernel_cmd, **kw):
            if stderr_log is None:
                return await super()._async_launch_kernel(kernel_cmd, **kw)
            with stderr_log.open("ab") as stderr:  # the kernel keeps its own copy of the file
                return await super()._async_launch_kernel(kernel_cmd, stderr=stderr, **kw)

        def client(self, **kw):
            made = super().client(**kw)
            self.clients.append(made)
            return made

    return IpcKernelManager


def _close_channels(kernel: AsyncKernelManager) -> None:
    """Close the channels of every client made for `kernel` (nbclient leaves them open when it
    was handed the kernel)."""
    for client in kernel.clients:
        client.stop_channels()


class Kernels:
    """Kernels for `count` chapters run one after another in `cwd`: `take` gives the next
    chapter its kernel (started ahead when it could be) and starts the one after it; `release`
    asks a finished chapter's kernel to exit without waiting for it; `close` ends them all
    (kills one never used). Every call comes from one thread (the chapters' loop)."""

    def __init__(self, count: int, cwd: Path, stderr_log: Path | None = None):
        self.left, self.cwd = count, cwd
        self._manager = ipc_manager(stderr_log)
        # started for the next chapter; the first one at once (it boots while the book
        # process imports papermill)
        self._spare: AsyncKernelManager | None = self._start() if count else None
        self._running: AsyncKernelManager | None = None
        self._exiting: list[AsyncKernelManager] = []

    def _start(self) -> AsyncKernelManager:
        kernel = self._manager(kernel_name=KERNEL)
        run_sync(kernel.start_kernel)(
            extra_arguments=[HISTORY, f"--IPKernelApp.exec_lines={WARM_UP}"], cwd=str(self.cwd)
        )
        return kernel

    def take(self) -> AsyncKernelManager:
        """The next chapter's kernel; the kernel of the chapter after it starts now."""
        if self.left < 1:
            raise RuntimeError("every chapter has had its kernel")
        kernel, self._spare = self._spare or self._start(), None
        self.left -= 1
        if self.left:
            self._spare = self._start()
        self._running = kernel
        return kernel

    def release(self, kernel: AsyncKernelManager) -> None:
        """Close the channels of a finished chapter's kernel and ask it to shut down; the
        kernels released before it have had a chapter's time to exit, and are cleaned up."""
        self._reap()
        _close_channels(kernel)
        run_sync(kernel.request_shutdown)()
        self._exiting.append(kernel)
        self._running = None

    def idle(self) -> set[int]:
        """The process ids of the kernels no chapter is running in (for `build.book.PeakMemory`)."""
        kernels = [k for k in (self._spare, *self._exiting) if k is not None and k.has_kernel]
        return {k.provisioner.pid for k in kernels if k.provisioner.pid is not None}

    def _reap(self) -> None:
        for kernel in self._exiting:  # one not gone yet: SIGTERM at 2.5 s, SIGKILL at 5 s
            run_sync(kernel.finish_shutdown)()
            run_sync(kernel.cleanup_resources)()
        self._exiting = []

    def close(self) -> None:
        """End every kernel: those released; and, killed, one a chapter was running in when
        the build stopped and one started for a chapter that never ran."""
        for kernel in (self._running, self._spare):
            if kernel is not None:
                _close_channels(kernel)
                run_sync(kernel.shutdown_kernel)(now=True)
                run_sync(kernel.cleanup_resources)()
        self._running = self._spare = None
        self._reap()
