"""The workbench and `engine ls` at scale: 10,000 sessions in sessions/, and one
session of 200,000 events.

    python benchmarks/scale.py [--sessions 10000] [--events 200000]

Prints: `engine ls` wall time; the session list's time to open and its key latency
(cursor down, a filter keystroke); the big session's time to open and each tab's
key latency (the key pressed until the screen has redrawn). Figures go to
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# The tab underline slides for 0.3 s after a switch and Pilot waits for it; the content is there
# before. Off, the figures are the key's own cost (the setting the app honours for users too).
os.environ.setdefault("TEXTUAL_ANIMATIONS", "none")

from tests.sessions_fixture import events, write_session  # noqa: E402


def many_sessions(root: Path, n: int) -> None:
    for i in range(n):
        write_session(root, f"run-{i:05d}", n_steps=3)


def big_events(folder: Path, n: int) -> None:
    folder.mkdir(parents=True)
    evs = events("big", n_steps=n - 16)
    (folder / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in evs))


async def settle(pilot, app, delay: float = 0.0) -> None:
    """Until the app has handled the key and what it asked for (a timer of `delay` s, the redraw)."""
    if delay:
        await asyncio.sleep(delay)
    await pilot.pause()


async def session_list(root: Path) -> dict:
    from workbench.app import sessions_app

    start = time.perf_counter()
    app = sessions_app(root)
    out = {}
    async with app.run_test(size=(160, 45)) as pilot:
        table = app.screen.query_one("#sessions")
        while table.row_count < 2:
            await pilot.pause(0.01)
        out["open"] = time.perf_counter() - start
        lags = []
        for _ in range(10):
            t = time.perf_counter()
            await pilot.press("down")
            await settle(pilot, app)
            lags.append(time.perf_counter() - t)
        out["down"] = lags
        await pilot.press("slash")
        lags = []
        from workbench.screens.sessions import FILTER_DELAY

        for ch in "run-0001":
            t = time.perf_counter()
            await pilot.press(ch)
            await settle(pilot, app, FILTER_DELAY)  # typed keys are refiltered once, after this pause
            lags.append(time.perf_counter() - t)
        out["filter"] = lags
    return out


async def big_session(folder: Path) -> dict:
    from workbench.app import attach_app

    start = time.perf_counter()
    app = attach_app(str(folder))
    out = {}
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.pause(0.3)
        while app.screen.state.finished is None:
            await pilot.pause(0.01)
        while app.screen.dirty:
            await pilot.pause(0.01)
        out["open"] = time.perf_counter() - start
        out["events"] = app.screen.state.events
        await pilot.press("1")
        await settle(pilot, app)
        for key in "123456" * 2:
            t = time.perf_counter()
            await pilot.press(key)
            await settle(pilot, app)
            out.setdefault(f"tab {key}", []).append(time.perf_counter() - t)
        for key in ("m", "m"):
            t = time.perf_counter()
            await pilot.press("1", key)
            await settle(pilot, app)
            out.setdefault("smooth (m)", []).append(time.perf_counter() - t)
    return out


def ms(xs) -> str:
    return f"median {statistics.median(xs) * 1000:.0f} ms, worst {max(xs) * 1000:.0f} ms"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=10_000)
    ap.add_argument("--events", type=int, default=200_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "sessions"
        t = time.perf_counter()
        many_sessions(root, args.sessions)
        print(f"made {args.sessions:,} sessions in {time.perf_counter() - t:.1f} s")
        walls = []
        for _ in range(3):
            t = time.perf_counter()
            out = subprocess.run([sys.executable, "-m", "engine", "ls", "--root", str(root)], capture_output=True, text=True, cwd=ROOT)
            walls.append(time.perf_counter() - t)
            assert out.returncode == 0, out.stderr
        print(f"engine ls, {args.sessions:,} sessions: median {statistics.median(walls):.2f} s (process start to exit, 3 runs)")
        r = asyncio.run(session_list(root))
        print(f"session list, {args.sessions:,} sessions: open {r['open']:.2f} s; cursor down {ms(r['down'])}; "
              f"filter keystroke {ms(r['filter'])}")
        folder = Path(tmp) / "big"
        big_events(folder, args.events)
        r = asyncio.run(big_session(folder))
        print(f"a session of {r['events']:,} events: open {r['open']:.2f} s")
        for key, lags in r.items():
            if key not in ("open", "events"):
                print(f"  {key}: {ms(lags)}")


if __name__ == "__main__":
    main()
