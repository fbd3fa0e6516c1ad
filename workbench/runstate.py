"""Everything a run screen shows, folded from events. Pure Python: the
follower thread feeds it, widgets only read it."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import PurePath

from engine import status as run_status
from engine.events import count
from engine.metrics import label

MAX_SAMPLES = 500
MAX_LOG = 2000


@dataclass
class RunState:
    name: str = ""
    started: dict = field(default_factory=dict)
    finished: dict | None = None
    series: dict[str, dict[str, list[tuple[int, float]]]] = field(default_factory=dict)  # phase -> metric -> points
    last_metrics: dict = field(default_factory=dict)
    evals: list[dict] = field(default_factory=list)
    samples: deque = field(default_factory=lambda: deque(maxlen=MAX_SAMPLES))
    alerts: list[dict] = field(default_factory=list)
    log: deque = field(default_factory=lambda: deque(maxlen=MAX_LOG))
    checkpoints: list[dict] = field(default_factory=list)
    heartbeat: dict = field(default_factory=dict)
    # status and where the run is (phase, set, stage, step/total, rollouts done/of): status.json's
    # fields, folded by the engine's own fold (engine/status.py), never a second one here
    summary: dict = field(default_factory=dict)
    events: int = 0
    log_count: int = 0  # lines ever logged (the deque keeps the last MAX_LOG): the log pane writes the new ones
    samples_seen: int = 0  # every sample gets its number (`seq`): the table keys rows by it, past any cap
    first_t: float | None = None
    last_t: float | None = None  # the latest event's time: where a run that died without a final event ended
    died_t: float | None = None  # when the screen learned the engine was gone: the end of one that died before any event
    spans: dict = field(default_factory=dict)  # stage -> [first t, last t] seen in it (for the run's ETA)
    _plan: dict | None = field(default=None, repr=False)  # engine.plan's seconds per kind of stage, asked once
    _totals: dict = field(default_factory=dict, repr=False)  # phase -> its steps in all (from its metrics)

    def add(self, events: list[dict]) -> None:
        """Fold events in (checked by engine.events.sanitize on the way); the follower's
        byte offsets guarantee each arrives once."""
        for e in events:
            self.events += 1
            t = e.get("t")
            if isinstance(t, (int, float)):
                self.first_t = t if self.first_t is None else self.first_t
                self.last_t = t if self.last_t is None else max(self.last_t, t)
            # a fixed table: an event's `kind` never names a method
            HANDLERS.get(e.get("kind"), RunState._other)(self, e)
            run_status.fold(self.summary, e)
            stage = current_stage(self) if e.get("kind") in ("metrics", "heartbeat", "eval") else None
            if stage and isinstance(t, (int, float)):
                self.spans.setdefault(stage, [t, t])[1] = t

    def _note(self, line: str) -> None:
        self.log.append(line)
        self.log_count += 1

    # one handler per kind; unknown kinds only reach the log
    def _run_started(self, e):
        self.started = e
        self.finished = None
        device = e.get("device")
        on = f" on {device}" if device and device != "-" else ""  # hand-written outputs ran on nothing
        self._note(f"run started: {e.get('model')}{on}" + (" (resumed)" if e.get("resumed") else ""))

    def _metrics(self, e):
        phase = e.get("phase", "?")
        self.last_metrics = e
        if isinstance(e.get("total"), int):
            self._totals[phase] = e["total"]
        step = e.get("step") or 0
        for key, value in e.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key not in ("t", "step", "total"):
                points = self.series.setdefault(phase, {}).setdefault(key, [])
                while points and points[-1][0] >= step:  # a resumed run redoes steps after its checkpoint
                    points.pop()
                points.append((step, float(value)))

    def _eval(self, e):
        self.evals.append(e)
        self._note(f"eval {e.get('set')} at {e.get('at')}: accuracy {e.get('accuracy') or 0:.1%}")

    def _sample(self, e):
        self.samples.append({**e, "seq": self.samples_seen})
        self.samples_seen += 1

    def _alert(self, e):
        self.alerts.append(e)
        self._note(f"ALERT {e.get('level')}: {e.get('message')}")

    def _checkpoint(self, e):
        self.checkpoints.append(e)
        self._note(f"checkpoint {e.get('path')}")

    def _heartbeat(self, e):
        self.heartbeat = e

    def _run_finished(self, e):
        self.finished = e
        self._note(f"run finished: {e.get('status')}" + (f": {e.get('error')}" if e.get("error") else ""))

    def _other(self, e):
        self._note(f"{e.get('kind')}: {', '.join(f'{k}={v}' for k, v in e.items() if k not in ('kind', 't'))[:200]}")

    # ---------------------------------------------------------------- views
    @property
    def status(self) -> str:
        return str(self.summary.get("status") or ("finished" if self.finished else "waiting"))

    def progress(self) -> tuple[str, int, int]:
        """(what, step, total) of where the run is: from its latest metrics, heartbeat or finished
        evaluation (during an evaluation or RL rollouts only heartbeats say it: `eval gsm8k`,
        `rl rollouts`)."""
        where = self.summary
        step, total = where.get("step"), where.get("total")
        what = " ".join(str(where[k]) for k in ("phase", "set", "stage") if isinstance(where.get(k), str))
        return what, step if isinstance(step, int) else 0, total if isinstance(total, int) else 0

    def rows_progress(self) -> str:
        """`rollouts 8/16` while RL samples: how many of the iteration's outputs are finished."""
        where = self.summary
        done, of = where.get("done"), where.get("of")
        ok = where.get("stage") == "rollouts" and isinstance(done, int) and isinstance(of, int)
        return f"rollouts {done}/{of}" if ok else ""

    def eta(self, now: float | None = None) -> float | None:
        """Seconds left in the current phase, from its pace so far."""
        what, step, total = self.progress()
        points = self.series.get(what.split(" ")[0], {}).get("step_time")
        if not points or not total or step >= total:
            return None
        recent = [v for _, v in points[-10:]]
        return (total - step) * sum(recent) / len(recent)

    def run_eta(self, now: float | None = None) -> float | None:
        """Seconds left in the whole run: the current stage from its pace over all its steps so far
        (not the last few, which jump), an evaluation to come from one already done, an SFT or RL
        stage not started yet from the plan's CPU rates (engine.plan) scaled by this run's own pace
        (the plan's own rates during setup and before a first step is timed). None while that cannot
        be told (a model of unknown size)."""
        stages = self.started.get("stages") if isinstance(self.started.get("stages"), list) else []
        here = current_stage(self)
        if self.finished or not stages:
            return None
        plan, pace = self._planned(), self._pace()
        if here not in stages:  # setup (loading the model, the data): every stage still to come, at the plan's rates
            kinds = ["eval" if str(st).startswith("eval") else st for st in stages]
            return sum(plan[k] for k in kinds) if plan and all(k in plan for k in kinds) else None
        now = now or time.time()
        left = self._stage_left(here) if not here.startswith("eval") else self._eval_left(here, now)
        done_evals = [b - a for st, (a, b) in self.spans.items() if st.startswith("eval") and st != here and b > a]
        kind = "eval" if here.startswith("eval") else here
        if left is None and kind == "eval" and done_evals:
            left = done_evals[-1]  # an evaluation just begun: as long as the last one
        elif left is None and plan and kind in plan:
            # `rl 0/3`: nothing timed in the stage yet; its share of the plan, at the pace so far (the plan's without one)
            _, step, total = self.progress()
            left = plan[kind] * (pace or 1.0) * (1 - step / total if total and kind != "eval" else 1.0)
        if left is None:
            return None
        for later in stages[stages.index(here) + 1:]:
            kind = "eval" if later.startswith("eval") else later
            if kind == "eval" and done_evals:
                left += done_evals[-1]
            elif plan and kind in plan:
                left += plan[kind] * (pace or 1.0)
            else:
                return None  # no pace to go by
        return left

    def finish_time(self, now: float | None = None) -> float | None:
        """When the whole run should end (wall clock), or None."""
        left = self.run_eta(now)
        return None if left is None else (now or time.time()) + left

    def _stage_left(self, here: str) -> float | None:
        """An SFT or RL stage's time left: its steps to go at the mean time of all its steps so far."""
        what, step, total = self.progress()
        points = self.series.get(here, {}).get("step_time")
        if not points or not total or what.split(" ")[0] != here:
            return None
        return max(0, total - step) * sum(v for _, v in points) / len(points)

    def _planned(self) -> dict | None:
        """engine.plan's CPU seconds per kind of stage for this run's config and model, or None."""
        if self._plan is None:
            self._plan = {}
            cfg_dict = self.started.get("config") if isinstance(self.started.get("config"), dict) else {}
            try:
                from engine import config as config_mod
                from engine.plan import known_shape, stage_seconds

                shape = known_shape(str(self.started.get("model")))
                # never opens a file the config names: its own eval sets come from run_started; a session
                # from before it said them gets the sets its config makes, from the shipped GSM8K
                data = {**cfg_dict, "data": {**(cfg_dict.get("data") or {}), "self_traces": "", "gsm8k": "auto"},
                        "eval": {**(cfg_dict.get("eval") or {}), "problems": [], "instruct_sets": []}}
                sizes = self.started.get("eval_sets")
                sizes = sizes if isinstance(sizes, dict) and sizes and all(type(v) is int for v in sizes.values()) else None
                if shape is not None:
                    self._plan = stage_seconds(config_mod.load(None, base=data), shape, eval_sets=sizes)
            except Exception:  # a session's config from elsewhere: no estimate, never an error on screen
                self._plan = {}
        return self._plan or None

    def _pace(self) -> float | None:
        """This run's speed against the plan's: measured seconds over planned, from the latest stage
        with a measure (an SFT or RL stage's steps, or a finished evaluation)."""
        plan = self._planned()
        if not plan:
            return None
        pace = None
        for stage in (self.started.get("stages") or []):
            kind = "eval" if str(stage).startswith("eval") else stage
            if kind not in plan or not plan[kind]:
                continue
            if kind == "eval":
                span = self.spans.get(stage)
                if span and span[1] > span[0] and stage != current_stage(self):
                    pace = (span[1] - span[0]) / plan[kind]
            else:
                points = self.series.get(kind, {}).get("step_time")
                total = self._totals.get(kind)
                if points and total:
                    pace = (sum(v for _, v in points) / len(points)) * total / plan[kind]
        return pace

    def eval_sets(self) -> dict[str, int | None]:
        """The sets an evaluation decodes, in order, with their problem counts: `run_started`'s
        `eval_sets`; a session written before it carried them (the recorded example) has its sets
        read off the config, their sizes unknown."""
        named = self.started.get("eval_sets")
        if isinstance(named, dict) and named and all(count(n) is not None for n in named.values()):
            return {str(k): v for k, v in named.items()}
        cfg = self.started.get("config") if isinstance(self.started.get("config"), dict) else {}
        ev = cfg.get("eval") if isinstance(cfg.get("eval"), dict) else {}
        sets = [k for k in ("synthetic", "gsm8k") if isinstance(ev.get(k), int) and ev[k] > 0]
        problems = ev.get("problems") if isinstance(ev.get("problems"), list) else []
        return dict.fromkeys(sets + [PurePath(str(p)).stem for p in problems])

    def _eval_left(self, here: str, now: float) -> float | None:
        """An evaluation's time left: the share of its problems decoded so far (its finished sets,
        and the set under way by its heartbeat's count), or of its sets where sizes are unknown."""
        sets = self.eval_sets()
        at = here.split(":", 1)[1]
        finished = [e for e in self.evals if e.get("at") == at]
        h = self.heartbeat
        part = (h.get("step") or 0) / h["total"] if isinstance(h.get("total"), int) and h["total"] else 0.0
        if sets and None not in sets.values() and sum(sets.values()):
            done = sum(sets.get(str(e.get("set"))) or 0 for e in finished) + ((h.get("step") or 0) if part else 0)
            share = done / sum(sets.values())
        else:
            share = (len(finished) + part) / max(len(sets), 1)
        span = self.spans.get(here)
        if not span or share <= 0.02:
            return None
        return (now - span[0]) * (1 - share) / share

    def elapsed(self, now: float | None = None, died: bool = False) -> float:
        """From the first event to the final one; a live run's to now; one that `died` without a
        final event, to its last event (its clock stopped with it), or, with no event at all, to
        when its death was seen."""
        if self.first_t is None:
            return 0.0
        now = now or time.time()
        # a dead run's last event, never later than now: a hostile `t` (year 4800) cannot stretch its clock
        stopped = self.last_t or self.died_t  # no event at all: the clock ran from the launch until the death was seen
        end = (self.finished or {}).get("t") or (min(stopped, now) if died and stopped else None) or now
        return max(0.0, end - self.first_t)

    def best_accuracy(self, set_name: str = "synthetic") -> float | None:
        accs = [e["accuracy"] for e in self.evals if e.get("set") == set_name and isinstance(e.get("accuracy"), (int, float))]
        return max(accs) if accs else None

    def code_table(self, set_name: str | None = None) -> tuple[list[str], list[str], dict]:
        """(eval labels, codes, {(label, code): count}) for the diagnostics-by-evaluation table: one
        column per (set, evaluation), so two sets evaluated at the same step never share a column."""
        evals = [e for e in self.evals if set_name is None or e.get("set") == set_name]
        labels = [f"{e.get('set')} {e.get('at')}@{e.get('step')}" for e in evals]
        codes = sorted({c for e in evals for c in e.get("diagnostic_counts", {})})
        cells = {(lab, c): e.get("diagnostic_counts", {}).get(c, 0) for lab, e in zip(labels, evals) for c in codes}
        return labels, codes, cells


@dataclass
class RunView:
    """What a pane of the run screen draws from (`show(view)`, widgets/pane.py): the run's state,
    the run compared with it, the screen's smoothing switch and the session it follows."""
    state: RunState
    other: RunState | None = None
    smoothing: bool = False
    target: str = ""  # a folder, or host:folder over ssh


HANDLERS = {
    "run_started": RunState._run_started, "metrics": RunState._metrics, "eval": RunState._eval,
    "sample": RunState._sample, "alert": RunState._alert, "checkpoint": RunState._checkpoint,
    "heartbeat": RunState._heartbeat, "run_finished": RunState._run_finished,
}


def smooth(points: list[tuple[int, float]], weight: float) -> list[tuple[int, float]]:
    """Exponential moving average, as TensorBoard smooths."""
    out, last = [], None
    for x, y in points:
        last = y if last is None else weight * last + (1 - weight) * y
        out.append((x, last))
    return out


PLOT_POINTS = 240  # a plot pane is under 120 columns of 2 dots each: more points only cost time


def downsample(points: list[tuple[int, float]], n: int = PLOT_POINTS) -> list[tuple[int, float]]:
    """At most n points: every k-th point and the last (a slice, so 200,000 steps cost what 400 do;
    TensorBoard likewise plots a sample of a long series)."""
    if len(points) <= n:
        return points
    step = -(-len(points) // (n - 1))
    return points[::step] + ([points[-1]] if (len(points) - 1) % step else [])


def rl_reading(state: RunState) -> str:
    """One line on the latest RL iteration, in the terms RL practitioners check, with a plain
    reading when the run is not learning (ties carry no signal; a flat reward; no entropy)."""
    rl = state.series.get("rl", {})
    if not rl.get("reward"):
        return ""
    last = {k: pts[-1][1] for k, pts in rl.items() if pts}
    parts = [f"rl {int(rl['reward'][-1][0])}: {label('reward')} {last['reward']:.2f}"]
    if "tied_groups" in last:
        parts.append(f"{label('tied_groups')} {last['tied_groups']:.0%}")
    if "completion_length" in last:  # mean/longest, in tokens
        parts.append(f"length {last['completion_length']:.0f}" + (f"/{last['completion_length_max']:.0f}" if "completion_length_max" in last else ""))
    for key in ("entropy", "kl"):
        if key in last:
            parts.append(f"{label(key)} {last[key]:.3f}")
    spent = [last.get("rollout_time"), last.get("update_time")]
    if all(isinstance(t, (int, float)) and t >= 0 for t in spent) and sum(spent) > 0:  # where the iteration's time went
        parts.append(f"time {spent[0] / sum(spent):.0%} rollouts, {spent[1] / sum(spent):.0%} update")
    questions = ((state.started.get("config") or {}).get("rl") or {}).get("questions")
    tied = last.get("tied_groups")
    rewards = [v for _, v in rl["reward"][-5:]]
    if isinstance(tied, float) and tied >= 0.75:
        groups = f"{round(tied * questions)} of {questions} groups" if isinstance(questions, int) and questions else f"{tied:.0%} of groups"
        parts.append(f"-> {groups} tied: no learning signal; raise rl.group_size or rl.temperature")
    elif len(rewards) == 5 and max(rewards) - min(rewards) < 0.01:
        parts.append("-> reward flat for 5 iterations: the update is not moving what the reward sees")
    elif "entropy" in last and last["entropy"] < 0.02:
        parts.append("-> entropy near 0: samples barely differ, so groups tie; raise rl.temperature")
    return "  ".join(parts)


def current_stage(state: RunState) -> str | None:
    """The stage the run is in, named as `run_started.stages` names it (`eval:sft`, `rl`);
    a periodic evaluation inside SFT (`sft@50`) belongs to `sft`."""
    if state.finished:
        return None
    newer = state.summary
    phase = newer.get("phase")
    if phase == "eval":
        at = str(newer.get("at") or "")
        return at.split("@")[0] if "@" in at else f"eval:{at}" if at else None
    return phase if isinstance(phase, str) else None


FILTER_KEYS = ("outcome", "code", "expert", "set", "phase")


def sample_matches(e: dict, query: str) -> bool:
    """The samples filter: `outcome:wrong code:overwrite expert:composition set:gsm8k
    phase:rl` (each a prefix of the value, case-insensitive; several words must all
    hold), anything else is looked for in the question and the output."""
    for word in query.lower().split():
        key, _, value = word.partition(":")
        if value and key in FILTER_KEYS:
            if key == "code":
                if not any(c.lower().startswith(value) for c in e.get("codes", [])):
                    return False
            else:
                field = {"expert": "expected_expert"}.get(key, key)
                if not str(e.get(field) or "").lower().startswith(value):
                    return False
        elif word not in (str(e.get("question") or "") + "\n" + str(e.get("text") or "")).lower():
            return False
    return True
