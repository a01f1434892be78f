"""Progress of long database operations: a protocol, a silent default and a Rich implementation."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class BackfillProgress:
    """Told after each backfill batch how many source rows it scanned and how many rows it wrote."""

    def advance(self, scanned: int, written: int) -> None:
        pass

    def finish(self) -> None:
        pass


class _RichBackfill(BackfillProgress):
    def __init__(self, progress: Progress, total: int, already: int, name: str) -> None:
        self.progress = progress
        self.task = progress.add_task(name, total=total, completed=already)
        progress.start()

    def advance(self, scanned: int, written: int) -> None:
        self.progress.update(self.task, advance=scanned)

    def finish(self) -> None:
        self.progress.update(self.task, completed=self.progress.tasks[0].total)
        self.progress.stop()


@dataclass
class StepRecord:
    label: str
    seconds: float


@dataclass
class Reporter:
    """Collects what happened; subclasses also show it. The silent default is used by tests."""

    steps: list[StepRecord] = field(default_factory=list)
    lock_retries: int = 0

    def revision_started(self, revision: str, title: str) -> None:
        self.steps = []

    def revision_done(self, revision: str, title: str, seconds: float) -> None:
        pass

    def step_done(self, label: str, seconds: float) -> None:
        self.steps.append(StepRecord(label, seconds))

    def lock_retry(self, label: str, attempt: int) -> None:
        self.lock_retries += 1

    def backfill_started(self, name: str, total: int, already: int, unit: str) -> BackfillProgress:
        return BackfillProgress()

    def message(self, text: str) -> None:
        pass


class RichReporter(Reporter):
    """Shows each revision and step as it completes, and a progress bar for every backfill."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console
        self._progress: Progress | None = None

    def revision_started(self, revision: str, title: str) -> None:
        super().revision_started(revision, title)
        self.console.print(f"[bold]→ {revision}[/bold] {title}")

    def revision_done(self, revision: str, title: str, seconds: float) -> None:
        self.console.print(f"  [green]✓[/green] {revision} applied in {seconds:.2f}s ({len(self.steps)} steps)")

    def step_done(self, label: str, seconds: float) -> None:
        super().step_done(label, seconds)
        self.console.print(f"    [dim]{label}[/dim] [dim]({seconds * 1000:.0f} ms)[/dim]", highlight=False)

    def lock_retry(self, label: str, attempt: int) -> None:
        super().lock_retry(label, attempt)
        if attempt in (1, 10, 50) or attempt % 100 == 0:
            self.console.print(f"    [yellow]waiting for a lock[/yellow] ({label}), attempt {attempt}")

    def backfill_started(self, name: str, total: int, already: int, unit: str) -> BackfillProgress:
        progress = Progress(
            TextColumn(f"    backfill {name}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(unit),
            TimeElapsedColumn(),
            console=self.console,
        )
        return _RichBackfill(progress, total, already, name)

    def message(self, text: str) -> None:
        self.console.print(text)


_current: Reporter = Reporter()


def current_reporter() -> Reporter:
    return _current


@contextmanager
def reporting(reporter: Reporter) -> Iterator[Reporter]:
    global _current
    previous, _current = _current, reporter
    try:
        yield reporter
    finally:
        _current = previous
