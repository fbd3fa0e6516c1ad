"""What a headless run prints: rich progress bars in a terminal, plain lines
otherwise (nohup, CI), and a summary table at the end. A sink of the run's
recorder (engine/recorder.py): it sees every event, on rank 0."""

from __future__ import annotations

import sys
import time


class Reporter:
    def __init__(self, interactive: bool | None = None):
        from .console import SafeConsole

        self.console = SafeConsole(stderr=False, highlight=False)
        self.interactive = self.console.is_terminal if interactive is None else interactive
        self.progress = None
        self.tasks: dict[str, int] = {}
        self.evals: list[dict] = []
        self.last_plain = 0.0

    def on_event(self, e: dict) -> None:
        kind = e.get("kind")
        if kind == "metrics":
            self._metrics(e)
        elif kind == "eval":
            self.evals.append(e)
            self.console.print(f"eval {e.get('set')} ({e.get('at')}): accuracy {e['accuracy']:.1%}  parse {e['parse_rate']:.1%}  "
                               f"valid {e['valid_rate']:.1%}  [{e['correct']}/{e['total']} correct]")
        elif kind == "alert":
            self.console.print(f"[bold red]alert[/] ({e.get('level')}): {e.get('message')}")
        elif kind == "run_started":
            self.console.print(f"run {e['run']}: {e['model']} on {e['device']}, {e['params_trainable']:,} of "
                               f"{e['params_total']:,} parameters trained; stages {', '.join(e['stages'])}")
        elif kind == "checkpoint":
            self.console.print(f"checkpoint {e['path']}")
        elif kind == "run_finished":
            self.console.print(f"run finished: {e['status']}" + (f" ({e['error']})" if e.get("error") else ""))

    def _metrics(self, e: dict) -> None:
        phase, step, total = e["phase"], e["step"], e["total"]
        info = "  ".join(f"{k} {e[k]:.4g}" for k in ("loss", "reward", "parse_rate", "tokens_per_s") if isinstance(e.get(k), (int, float)))
        if self.interactive:
            if self.progress is None:  # started by the first step: a run refused before it has none to clean up
                self.progress = _bars(self.console)
            if phase not in self.tasks:
                self.tasks[phase] = self.progress.add_task(phase, total=total, info="")
            self.progress.update(self.tasks[phase], completed=step, total=total, info=info)
        elif step == total or step == 1 or time.time() - self.last_plain > 5:
            self.last_plain = time.time()
            print(f"{phase} {step}/{total}  {info}", flush=True)

    def close(self) -> None:
        if self.progress:
            self.progress.stop()
        if not self.evals:
            return
        from .tables import eval_table

        self.console.print(eval_table(self.evals))
        sys.stdout.flush()


def _bars(console):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    bars = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), TextColumn("{task.fields[info]}"), console=console)
    bars.start()
    return bars
