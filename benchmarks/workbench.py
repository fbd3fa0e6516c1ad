"""Workbench responsiveness: time to the first screen, time to open a session
of 10,000 events, and key latency while a live run streams events.

    python benchmarks/workbench.py
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.sessions_fixture import events  # noqa: E402

FIRST_SCREEN = r"""
import sys, time
from pathlib import Path
from workbench.app import sessions_app

async def shown(pilot):
    await pilot.pause()
    assert pilot.app.screen.query_one("#sessions").row_count >= 3  # and the recorded example
    pilot.app.exit()

sessions_app(Path(sys.argv[1])).run(headless=True, auto_pilot=shown)
"""


def first_screen(root: Path) -> float:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", FIRST_SCREEN, str(root)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    wall = time.perf_counter() - start
    return wall if out.returncode == 0 else float("nan")


def big_session(root: Path, n: int = 10_000) -> Path:
    folder = root / "big"
    folder.mkdir(parents=True)
    evs = events("big", n_steps=n - 16)  # 16 events besides the SFT metrics
    (folder / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in evs))
    return folder


async def open_big(folder: Path) -> float:
    from workbench.app import attach_app

    start = time.perf_counter()  # from the screen's creation: the follower reads while it mounts
    app = attach_app(str(folder))
    async with app.run_test(size=(160, 45)) as pilot:
        while app.screen.state.finished is None or app.screen.dirty:  # the last event read and drawn
            await pilot.pause(0.01)
        return time.perf_counter() - start, app.screen.state.events


async def typing_lag(root: Path) -> list[float]:
    from workbench.app import attach_app

    folder = root / "live"
    folder.mkdir()
    path = folder / "events.jsonl"
    path.write_text("")
    stop = threading.Event()

    def writer():
        i = 0
        evs = events("live", n_steps=100_000, finished=False)
        with open(path, "a") as f:
            while not stop.is_set() and i < len(evs):
                f.write("".join(json.dumps(e) + "\n" for e in evs[i : i + 50]))  # 500 events/s in bursts
                f.flush()
                i += 50
                time.sleep(0.1)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    app = attach_app(str(folder))
    lags = []
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.pause(0.5)
        for _ in range(40):
            start = time.perf_counter()
            await pilot.press("m")
            lags.append(time.perf_counter() - start)
            await pilot.pause(0.05)
    stop.set()
    return lags


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name in ("a", "b", "c"):
            from tests.sessions_fixture import write_session

            write_session(root / "sessions", name)
        runs = [first_screen(root / "sessions") for _ in range(3)]
        print(f"first screen (process start to sessions list, 3 sessions): best {min(runs):.2f} s, median {statistics.median(runs):.2f} s")
        folder = big_session(root)
        small = root / "small"
        small.mkdir()
        evs = events("small", n_steps=1)
        (small / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in evs))
        base = min(asyncio.run(open_big(small))[0] for _ in range(2))
        seconds, n = min(asyncio.run(open_big(folder)) for _ in range(2))
        print(f"open a session of {n:,} events (app start, read, fold, first full redraw): {seconds:.2f} s; "
              f"a session of {len(evs)} events: {base:.2f} s, so the events cost {seconds - base:.2f} s")
        lags = sorted(asyncio.run(typing_lag(root)))
        print(f"key latency during a live run streaming 500 events/s: median {statistics.median(lags) * 1000:.0f} ms, "
              f"worst {lags[-1] * 1000:.0f} ms over {len(lags)} keys")


if __name__ == "__main__":
    main()
