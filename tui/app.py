"""The podpath Textual app, and the one factory the CLI, tests and screenshots use."""

from __future__ import annotations

import gc
import os
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from functools import partial
from typing import ClassVar

from rich.console import RenderableType
from textual import work
from textual.app import App, SuspendNotSupported, SystemCommand
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from podpath import safe_files
from podpath.snapshot import codec
from podpath.snapshot.model import Pod, Snapshot
from podpath.tui import crash, doctor_ahead, registry
from podpath.tui.actions import ActionResult, Actions, NoActions, pod_target
from podpath.tui.key_order import KeyOrder
from podpath.tui.screens.base import BaseScreen
from podpath.tui.screens.help import HelpScreen
from podpath.tui.screens.jump import JumpScreen
from podpath.tui.screens.prompt import PromptScreen
from podpath.tui.screens.trace import TraceScreen
from podpath.tui.source import CollectError, SnapshotSource
from podpath.tui.state import Loaded, is_small
from podpath.tui.styles import CSS as APP_CSS
from podpath.tui.text import clean

# What each worker does, for the one sentence that says it failed.
WORKER_CONTEXT = {
    "collect": "collecting the node",
    "prepare": "parsing the rules and conntrack",
    "trace": "tracing",
}
# Failures of the environment rather than of podpath: said as they are, no report file.
EXPECTED_ERRORS = (OSError, CollectError)


class PodpathApp(KeyOrder, App[None]):
    """Explore one node's networking from a snapshot source."""

    CSS = APP_CSS
    TITLE = "podpath"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("colon", "jump", "Jump", key_display=":"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("r", "refresh", "Refresh"),
        # Hidden in the footer (screens with a pod show their own `t`); listed by `?`.
        Binding("t", "trace_here", "Trace", show=False),
        Binding("w", "write", "Write", show=False),
        Binding("q", "quit", "Quit"),
        # A k9s user quits with ctrl+c; Textual's default only says "press ctrl+q". An
        # input with selected text still copies it (Input binds ctrl+c itself and skips
        # the action, so this one runs, only when nothing is selected).
        Binding("ctrl+c", "quit", "Quit", show=False, system=True),
    ]

    class SnapshotReady(Message):
        """A snapshot was loaded or collected and is now shown."""

        def __init__(self, snapshot: Snapshot, refreshed: bool) -> None:
            super().__init__()
            self.snapshot = snapshot
            self.refreshed = refreshed

    class CollectFailed(Message):
        """Collecting or loading a snapshot failed; the previous one stays shown."""

        def __init__(self, reason: str) -> None:
            super().__init__()
            self.reason = reason

    class ViewsReady(Message):
        """The loaded snapshot's big views (Services, conntrack, problems) are parsed."""

        def __init__(self, loaded: Loaded) -> None:
            super().__init__()
            self.loaded = loaded

    class Progress(Message):
        """A step of collecting (kind "collect") or preparing the views ("prepare") started."""

        def __init__(self, kind: str, what: str, done: int, total: int) -> None:
            super().__init__()
            self.kind = kind
            self.what = what
            self.done = done
            self.total = total

    class RefreshDropped(Message):
        """A refresh was asked for while one was running: dropped, like k9s does."""

    def __init__(self, source: SnapshotSource, actions: Actions | None = None) -> None:
        super().__init__()
        self.source = source
        self.actions: Actions = actions if actions is not None else NoActions()
        self.loaded: Loaded | None = None
        self._cancel = threading.Event()
        self._collecting = False
        # Set by exit(): from then on keys do nothing while the screens are torn down.
        self.quitting = False
        # What is printed on exit (a crash's one sentence) is never wrapped or cropped:
        # the report's path in it must stay whole to be copied.
        self.error_console.soft_wrap = True
        self._ahead = self._doctor_ahead(source)

    @staticmethod
    def _doctor_ahead(source: SnapshotSource) -> doctor_ahead.DoctorAhead | None:
        """A child computing the doctor's findings on a big initial snapshot, forked now:
        before the app runs, this process has no thread yet (podpath.tui.doctor_ahead)."""
        initial = source.initial
        if initial is None or is_small(initial):
            return None
        # Out of the cyclic GC's reach before the fork (as _show does after it): a
        # collection in this process would write into every page the child shares.
        settle_heap()
        return doctor_ahead.start(initial, source.peers)

    # --- loading ----------------------------------------------------------------------

    def on_mount(self) -> None:
        """Show the initial snapshot, or start collecting one."""
        self.sub_title = clean(self.source.title(None))
        if self.source.initial is not None:
            self._show(self.source.initial)
        self.push_screen(registry.home().screen(""))
        if self.source.initial is None and self.source.can_refresh:
            self.action_refresh()

    def _show(self, snapshot: Snapshot) -> None:
        ahead = self._ahead if snapshot is self.source.initial else None
        loaded = self.loaded = Loaded(snapshot, self.source.peers, ahead)
        settle_heap()
        self.sub_title = clean(self.source.title(snapshot))
        if loaded.small:
            loaded.prepare()
        else:
            # After the first frame of the screen that will show it (on start-up that
            # screen is pushed after this call): parsing holds the GIL and would delay it.
            held = weakref.ref(loaded)  # what a worker holds may outlive it (tui/weak_work.py)
            self.call_after_refresh(lambda: self.screen.call_after_refresh(self._prepare, held))

    @work(thread=True, exclusive=True, group="prepare", exit_on_error=False, name="prepare")
    def _prepare(self, held: weakref.ref[Loaded]) -> None:
        """Parse the big views once per snapshot off the event loop, then tell the screens
        (nothing when a newer snapshot replaced this one before the worker ran)."""
        loaded = held()
        if loaded is not None:
            loaded.prepare(partial(self._post_progress, "prepare"))
            self.post_message(self.ViewsReady(loaded))

    def _post_progress(self, kind: str, what: str, done: int, total: int) -> None:
        """From a worker thread: a step started (post_message is thread-safe)."""
        self.post_message(self.Progress(kind, what, done, total))

    def alive(self) -> bool:
        """False once the app is shutting down (q, ctrl+c, the end of a test): the screens
        and the header are being torn down, and a late message (a collected snapshot, a
        step of the parse) must not query their widgets (NoMatches: HeaderTitle, #note)."""
        return self.is_running and not self.quitting

    def on_podpath_app_progress(self, message: Progress) -> None:
        """Say which part is being read or parsed, and how far: in the header, and on
        the screens waiting for the views."""
        if not self.alive():
            return
        loaded = self.loaded
        if message.kind == "collect" and self._collecting:
            shown = loaded.snapshot if loaded else None
            # The progress first: the header is cut at its right end (at 80 columns
            # after about 60 characters), and what is being read is the news.
            self.sub_title = (
                f"⟳ reading {message.what} ({message.done + 1}/{message.total})… · "
                + clean(self.source.title(shown))
            )
        elif message.kind == "prepare" and loaded is not None and not loaded.ready.is_set():
            for screen in self.screen_stack:
                if isinstance(screen, BaseScreen):
                    screen.reload()

    def on_podpath_app_views_ready(self, message: ViewsReady) -> None:
        """Fill in what waited for the views (home's counts, Services, Conntrack)."""
        if message.loaded is not self.loaded or not self.alive():
            return  # a newer snapshot replaced it
        for screen in self.screen_stack:
            if isinstance(screen, BaseScreen):
                screen.reload()

    def action_refresh(self) -> None:
        """Re-collect in a thread worker; a refresh while one runs is dropped."""
        if not self.source.can_refresh:
            self.notify("this is a saved snapshot: nothing to refresh", timeout=3)
            return
        if self._collecting:
            self.post_message(self.RefreshDropped())
            self.notify("a refresh is already running", timeout=2)
            return
        self._collecting = True
        self.screen.set_class(True, "-collecting")
        self.sub_title = "⟳ collecting… · " + clean(
            self.source.title(self.loaded.snapshot if self.loaded else None)
        )
        self._collect()

    @work(thread=True, exclusive=False, group="collect", exit_on_error=False, name="collect")
    def _collect(self) -> None:
        """Collect a snapshot off the event loop and post it (post_message is thread-safe):
        not the worker's result, which could outlive it (tui/weak_work.py)."""
        assert self.source.collect is not None
        previous = self.loaded.snapshot if self.loaded else None
        progress = partial(self._post_progress, "collect")
        snapshot = self.source.collect(self._cancel, previous, progress)
        self.post_message(self.SnapshotReady(snapshot, refreshed=previous is not None))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The app's own workers: failures to report_failure, a collected snapshot to the screens."""
        worker = event.worker
        if event.state == WorkerState.ERROR:
            self.report_failure(worker)
        if worker.group == "prepare" and event.state == WorkerState.ERROR:
            loaded = self.loaded
            if loaded is not None:
                loaded.failed = True
                self.post_message(self.ViewsReady(loaded))
        if worker.group != "collect":
            return
        if event.state == WorkerState.SUCCESS:
            self._collecting = False  # its snapshot was posted (SnapshotReady)
        elif event.state in (WorkerState.ERROR, WorkerState.CANCELLED):
            self._collecting = False
            error = worker.error
            self.post_message(
                self.CollectFailed(f"{type(error).__name__}: {error}" if error else "cancelled")
            )

    def report_failure(self, worker: Worker[object]) -> None:
        """The one place a failed worker reaches the user: one notice; a report file for a bug.

        Errors of the environment (a permission, a vanished file, a collector's own
        refusal) are said as they are. Anything else is a bug: its traceback goes to a
        private file (no locals) that the notice names.
        """
        error = worker.error
        if error is None:
            return
        what = WORKER_CONTEXT.get(worker.name, worker.name or "a background task")
        if isinstance(error, EXPECTED_ERRORS):
            text = clean(f"{what} failed: {type(error).__name__}: {error}")
        else:
            # Already made visible: cleaning it again would double its backslashes.
            text = crash.sentence(error, what, crash.write_report(error, what))
        self.notify(text, severity="error", markup=False, timeout=10)

    def on_podpath_app_snapshot_ready(self, message: SnapshotReady) -> None:
        """Show the new snapshot on every screen (rows update in place by key)."""
        if not self.alive():
            return
        self._show(message.snapshot)
        for screen in self.screen_stack:
            screen.set_class(False, "-collecting")
            if isinstance(screen, BaseScreen):
                screen.reload()

    def on_podpath_app_collect_failed(self, message: CollectFailed) -> None:
        """Keep showing what we had (report_failure has said what failed)."""
        if not self.alive():
            return
        self.sub_title = clean(self.source.title(self.loaded.snapshot if self.loaded else None))
        self.screen.set_class(False, "-collecting")

    def _handle_exception(self, error: Exception) -> None:
        """An unexpected error: exit status 1 and one sentence naming a report file, never locals.

        Textual's default prints a Rich traceback with every frame's locals, which hold
        the snapshot (pods, environment names); crash.Crash renders as one line instead.
        """
        super()._handle_exception(
            error if isinstance(error, crash.Crash) else crash.Crash(error, "the TUI")
        )

    def exit(
        self, result: None = None, return_code: int = 0, message: RenderableType | None = None
    ) -> None:
        """Quit; keys typed after this do nothing (see check_action)."""
        self.quitting = True
        super().exit(result, return_code, message)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """No action once quitting or shutting down: a `t` typed right after `q` must not
        open a screen, and a screen being torn down has no widgets left to act on."""
        if not self.alive():
            return False
        return super().check_action(action, parameters)

    def on_unmount(self) -> None:
        """Tell a running collector to stop, and the doctor's child if it still runs."""
        self._cancel.set()
        if self._ahead is not None:
            self._ahead.cancel()

    # --- navigation -------------------------------------------------------------------

    def open_screen(self, name: str, argument: str | None = None) -> None:
        """Open a view of the registry by name (home pops back to home; others stack)."""
        view = registry.find(name)
        if view is None or (view.detail and not argument):
            self.notify(clean(f"no view called {name!r}"), severity="warning", markup=False)
            return
        if view.name == registry.HOME:
            while len(self.screen_stack) > 2:
                self.pop_screen()
            return
        self.push_screen(view.screen(argument or ""))

    def home_menu(self, loaded: Loaded) -> list[tuple[str, str, str]]:
        """Home's menu: (name, label, count) of every view `:` offers but home itself."""
        return [
            (v.name, v.label, registry.count_text(v, loaded))
            for v in registry.jump_views()
            if v.name != registry.HOME
        ]

    def start_trace(self, source: str, destination: str = "", proto: str = "tcp") -> None:
        """Open Trace with the inputs filled in."""
        self.push_screen(TraceScreen(source, destination, proto))

    def action_jump(self) -> None:
        """`:` prompt."""

        def jump(choice: tuple[str, str] | None) -> None:
            if choice is not None:
                self.open_screen(*choice)

        self.push_screen(JumpScreen(), jump)

    def action_help(self) -> None:
        """`?` lists the current screen's keys."""
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        """ctrl+p: every view, refresh and write, next to Textual's own commands."""
        yield from super().get_system_commands(screen)
        for view in registry.jump_views():
            yield SystemCommand(
                f"Go to {view.label}",
                f":{view.name} — {view.about}",
                lambda name=view.name: self.open_screen(name),
            )
        yield SystemCommand("Refresh", "Collect the node's state again (r)", self.action_refresh)
        yield SystemCommand(
            "Write snapshot", "Save the current snapshot as JSON (w)", self.action_write
        )

    # --- pod actions (s, c, t) ----------------------------------------------------------

    def _selected_pod(self) -> Pod | None:
        getter = getattr(self.screen, "selected_pod", None)
        pod = getter() if callable(getter) else None
        if not isinstance(pod, Pod):
            self.notify("select a pod first (:pods)", severity="warning", timeout=3)
            return None
        return pod

    def action_pod_shell(self) -> None:
        """`s`: a shell in the selected pod's netns (nsenter), app suspended meanwhile."""
        pod = self._selected_pod()
        target = pod_target(pod) if pod else None
        if pod is not None and target is None:
            self.notify("this pod has no pause process to enter (hostNetwork?)", severity="warning")
        if target is None:
            return
        self._handover(lambda: self.actions.shell(target))

    def action_pod_capture(self) -> None:
        """`c`: capture packets on the selected pod's eth0 into a pcap file."""
        pod = self._selected_pod()
        target = pod_target(pod) if pod else None
        if target is None:
            return
        where = self.actions.capture_directory()
        if where is None:
            # Nothing to capture from (a saved snapshot): say so before asking for a file.
            self.notify(
                clean(f"no capture for {target.pod}: this is a snapshot, not a live node"),
                severity="error",
                markup=False,
            )
            return
        default = f"podpath-{file_word(target.pod)}-{int(time.time())}.pcap"

        def answered(value: str | None) -> None:
            if not value or target is None:
                return
            path, _, rest = value.partition(" ")
            count, seconds = _count_seconds(rest)
            self._handover(lambda: self.actions.capture(target, path, count, seconds))

        question = "capture to FILE [COUNT [SECONDS]] (tcpdump on the pod's eth0)"
        question += f"; a name without a directory goes to {where}"
        self.push_screen(PromptScreen(question, f"{default} 100 10"), answered)

    def _handover(self, action: Callable[[], ActionResult]) -> None:
        """Give the terminal to an action (app suspended), then report its result."""
        if self.is_headless:
            # Tests and screenshots: there is no terminal to hand over.
            result = action()
        else:
            try:
                with self.suspend():
                    result = action()
            except SuspendNotSupported:
                self.notify("this terminal cannot hand over to a shell", severity="error")
                return
        self.refresh(repaint=True, layout=True)
        self.notify(
            clean(result.message), severity="information" if result.ok else "error", markup=False
        )

    def action_pod_trace(self) -> None:
        """`t`: Trace from the selected pod."""
        pod = self._selected_pod()
        if pod is not None:
            self.start_trace(f"{pod.namespace}/{pod.name}")

    def action_trace_here(self) -> None:
        """`t` anywhere: Trace, prefilled from what the current screen has selected."""
        screen = self.screen
        if isinstance(screen, TraceScreen) or not isinstance(screen, BaseScreen):
            return  # already tracing, or a modal (help, prompt) is open
        source, destination = screen.trace_inputs()
        self.start_trace(source, destination)

    # --- write ------------------------------------------------------------------------

    def action_write(self) -> None:
        """`w`: save the current snapshot as JSON."""
        if self.loaded is None:
            self.notify("nothing loaded yet", severity="warning")
            return
        snap = self.loaded.snapshot
        taken = time.strftime("%Y%m%dT%H%M%S", time.gmtime(snap.taken_at))
        default = f"podpath-{file_word(snap.node.hostname)}-{taken}.json"
        where = safe_files.state_dir("snapshots")

        def answered(path: str | None) -> None:
            if path:
                self._write(snap, path, where)

        question = f"write the snapshot to (a name without a directory goes to {where})"
        self.push_screen(PromptScreen(question, default), answered)

    def _write(self, snapshot: Snapshot, path: str, where: str) -> None:
        try:
            # A new file only: never over an existing one, never through a planted symlink.
            out = safe_files.create_new(path, where)
        except safe_files.UnsafePath as exc:
            self.notify(clean(f"not written: {exc}"), severity="error", markup=False)
            return
        try:
            with os.fdopen(out.fd, "w", encoding="ascii", closefd=False) as fp:
                codec.dump(snapshot, fp)
        except OSError as exc:
            out.discard()
            self.notify(
                clean(f"cannot write {out.path}: {exc.strerror}"), severity="error", markup=False
            )
            return
        out.close()
        self.notify(clean(f"snapshot written to {out.path}"), markup=False)


def settle_heap() -> None:
    """Move what is loaded out of the cyclic GC's reach (gc.freeze).

    A snapshot is hundreds of thousands of acyclic objects that live until the next
    refresh; every gen-2 collection rescans them all, and building rows then costs
    30x more (2,000 Service rows: 0.6 s -> 0.02 s). Refcounting still frees them.
    """
    gc.freeze()


def file_word(text: str) -> str:
    """Node text made safe in a file name: no '/', '..', spaces or control characters."""
    word = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip(".")
    return word[:64] or "node"


def _count_seconds(text: str) -> tuple[int, int]:
    parts = text.split()
    try:
        count = int(parts[0]) if parts else 100
        seconds = int(parts[1]) if len(parts) > 1 else 10
    except ValueError:
        return 100, 10
    return max(1, min(count, 1_000_000)), max(1, min(seconds, 3600))


def create_app(source: SnapshotSource, actions: Actions | None = None) -> PodpathApp:
    """The one factory: the CLI, the tests and `podpath screenshot` all build the app here."""
    return PodpathApp(source, actions)
