"""The metrics a run reports, one entry each: what `metrics` events carry besides where the run is.

The loops (train/sft.py, train/rl.py) and the TRL integration emit them; the workbench's panes
take their labels and units from here, and docs/events.md's metric table lists the same entries
(tests/test_metrics.py holds the three together, and fails on a metric a run emits that is not
here). Pure Python: the workbench imports it without torch.

A new metric: one entry below, one row in docs/events.md's table, then emit it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    name: str  # the key in the event
    label: str  # the words a person reads (a line of text, a table)
    unit: str  # "" for a plain number; "share" is a fraction of 1, shown as a percentage
    phases: tuple[str, ...]  # the `phase` of the events that carry it
    meaning: str  # one line: what it measures
    short: str = ""  # a plot legend's word, under the plot's own title, where shorter than the label

    @property
    def legend(self) -> str:
        return self.short or self.label


SFT, RL = ("sft",), ("rl",)
BOTH = ("sft", "rl")

CATALOGUE: tuple[Metric, ...] = (
    Metric("loss", "loss", "", BOTH, "SFT: cross-entropy per answer token, mean over ranks; RL: the policy loss of the update (a mean over tokens; gspo: over completions)"),
    Metric("lr", "learning rate", "", BOTH, "the learning rate of this step", short="lr"),
    Metric("tokens_per_s", "tokens/s", "tok/s", BOTH,
           "SFT: tokens trained per second, all ranks; RL: tokens sampled per second in the rollouts", short="tok/s"),
    Metric("step_time", "step time", "s", BOTH, "wall-clock seconds of the step (RL: rollouts and update)"),
    Metric("rollout_time", "rollout time", "s", RL, "seconds of the iteration spent generating and scoring its rollouts",
           short="rollouts"),
    Metric("update_time", "update time", "s", RL, "seconds of the iteration spent in the update and pushing the weights to "
           "the rollout backend", short="update"),
    Metric("grad_norm", "gradient norm", "", BOTH, "the gradient's norm before clipping (RL: TRL runs only)", short="grad norm"),
    Metric("epoch", "epoch", "", SFT, "the pass over the training set this step belongs to, from 0"),
    Metric("threads", "CPU threads", "", SFT, "CPU threads in use (fewer while other processes keep cores busy, run.cpu_threads)"),
    Metric("reward", "reward", "", RL, "mean reward of the iteration's completions"),
    Metric("reward_std", "reward std", "", RL, "standard deviation of those rewards"),
    Metric("baseline", "baseline", "", RL, "the running mean reward (REINFORCE's baseline), rl.baseline_momentum"),
    Metric("accuracy", "accuracy", "share", RL, "share of the iteration's completions answered right", short="acc"),
    Metric("parse_rate", "parse rate", "share", RL, "share of completions the task could read", short="parse"),
    Metric("kl", "KL", "nats", RL, "KL divergence from the reference model (k3 estimate), when rl.kl_coef > 0"),
    Metric("entropy", "entropy", "nats", RL, "mean entropy of the sampled tokens' distributions"),
    Metric("tied_groups", "tied groups", "share", RL, "share of groups (grpo, gspo) whose rewards all tie: no learning signal",
           short="tied"),
    Metric("completion_length", "completion length", "tokens", RL, "mean tokens per completion", short="mean"),
    Metric("completion_length_max", "longest completion", "tokens", RL, "tokens of the longest completion", short="max"),
    Metric("clip_ratio", "clip ratio", "share", RL, "share of tokens (gspo: of completions) whose importance ratio was clipped (rl.batch_reuse > 1)"),
    Metric("vllm_logprob_gap", "vLLM log-prob gap", "nats", RL, "mean absolute difference of the trainer's and vLLM's log-probs over the sampled tokens of "
           "the completions the update learns from (rl.backend=vllm, rl.vllm_is_cap > 0): the sampler/trainer mismatch",
           short="gap"),
    Metric("vllm_is_capped", "IS weights capped", "share", RL, "share of tokens (gspo: of completions) whose mismatch weight "
           "exp(trainer - vLLM) reached rl.vllm_is_cap", short="capped"),
    Metric("drawn", "questions drawn", "", RL, "questions sampled to fill the batch (dynamic sampling draws more)"),
    Metric("cut_rate", "cut rate", "share", RL, "share of completions cut at the length limit (TRL runs)"),
    Metric("skipped", "skipped", "flag", RL, "true when every group tied and no update was made"),
    Metric("health", "health", "record", RL,
           "the outputs' collapse signs: loop_rate, distinct_1/2, identical_rate, mean_length, cut_rate"),
)

METRICS = {m.name: m for m in CATALOGUE}
WHERE = ("kind", "t", "phase", "step", "total")  # the fields of every metrics event that say where, not what


def unknown(phase: str, names) -> list[str]:
    """The names (of a metrics event's fields, or a dict of values) that are no metric of `phase`
    in the catalogue: the engine checks what it emits, so a new metric gets an entry (and its
    row in docs/events.md) before it reaches a pane that would not know what it is."""
    return [n for n in names if n not in WHERE and (n not in METRICS or phase not in METRICS[n].phases)]


def label(name: str) -> str:
    return METRICS[name].label


def unit(name: str) -> str:
    return METRICS[name].unit
