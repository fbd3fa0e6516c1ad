"""The RL algorithms: each is one class behind one interface, listed in ALGORITHMS, the one
table the config's choices (rl.algorithm), the plan and the new-run form read.

A new algorithm = one class here + one row in ALGORITHMS (and its keys in RLConfig if it has any).

The interface, for a batch of rollouts in question order (a question's `group_size` samples side by side):
    algo.name, algo.label            the config's value, the form's words
    algo.group_size                  samples per question (1: one sample per question)
    algo.grouped                     advantages are taken within each question's group (so tied groups,
                                     DAPO's dynamic sampling and rl.screen's medium questions mean something)
    algo.advantages(rewards, baseline) -> one advantage per sample
    algo.row_loss(logps, old, adv, weights=None)
                                     one completion's policy loss (a scalar tensor) and its clipped share
                                     (None when nothing was clipped against); `old` is None when the batch is
                                     used once (rl.batch_reuse=1); `weights`: sampler_weights' correction, or None
    algo.sampler_weights(trainer, sampler, cap)
                                     truncated importance sampling of the sampler/trainer mismatch (rl.vllm_is_cap):
                                     min(exp(trainer - sampler), cap), detached, per token (grpo, reinforce) or one
                                     per completion (gspo), as row_loss applies it
    algo.tied(rewards)               the share of groups whose rewards all tie (None without groups)
    algo.row_weight(n_tokens, rows)  what rl.update multiplies each row_loss by before dividing the batch's sum
                                     by its token count: 1 for token-level losses (every token weighs the same);
                                     tokens/rows for a sequence-level one (every completion weighs the same)

torch is imported inside the loss code only: the workbench imports this table and never torch.
"""

from __future__ import annotations

import statistics


class Algorithm:
    name = ""
    label = ""  # the form's words
    doc = ""  # one line: the config's doc and docs/training.md's table
    grouped = False

    def __init__(self, rc) -> None:
        self.rc = rc  # the run's RLConfig

    @property
    def group_size(self) -> int:
        return self.rc.group_size if self.grouped else 1

    def advantages(self, rewards: list[float], baseline: float | None) -> list[float]:
        raise NotImplementedError

    def row_loss(self, logps, old, adv: float, weights=None):
        """The token-level policy gradient -A * sum(log p), or PPO's clipped surrogate summed over the
        completion's tokens when `old` (the sampling weights' log-probs of a reused batch) is given;
        each token's term times its `weights` (sampler_weights) where given, as TRL multiplies its
        per-token loss by the vLLM importance ratio. Without weights the arithmetic is the old one."""
        if old is None:
            return -(adv * (logps.sum() if weights is None else (weights * logps).sum())), None
        import torch

        ratio = torch.exp(logps - old)
        clipped = ratio.clamp(1 - self.rc.epsilon, 1 + self.rc.epsilon_high)
        bit = float((clipped * adv < ratio * adv).float().mean())  # the share of tokens the clip held back
        surrogate = torch.minimum(ratio * adv, clipped * adv)
        return -(surrogate if weights is None else surrogate * weights).sum(), bit

    def sampler_weights(self, trainer, sampler, cap: float):
        """Truncated importance sampling (Yao et al. 2025; TRL's token-level vllm_importance_sampling):
        the tokens were drawn by vLLM (other kernels, bf16), not by the trainer's forward pass, so each
        token's loss is weighed by p_trainer / p_vLLM, capped above at `cap` so that a token vLLM found
        unlikely cannot dominate the step. Detached: a weight, not a path for the gradient."""
        import torch

        return torch.exp(trainer - sampler).clamp(max=cap).detach()

    def row_weight(self, n_tokens: float, rows: int) -> float:
        return 1.0

    def tied(self, rewards: list[float]) -> float | None:
        """The share of questions whose group's rewards all tie (no learning signal); None without groups."""
        return tied_share(rewards, self.group_size) if self.grouped else None


class Reinforce(Algorithm):
    name = "reinforce"
    label = "REINFORCE + baseline"
    doc = "reinforce: one sample per question, its advantage relative to a running reward baseline (rl.baseline_momentum)"

    def advantages(self, rewards: list[float], baseline: float | None) -> list[float]:
        base = baseline if baseline is not None else sum(rewards) / len(rewards)
        return [r - base for r in rewards]


class GRPO(Algorithm):
    name = "grpo"
    label = "GRPO (group-relative)"
    doc = ("grpo: rl.group_size samples per question, advantages relative to the group (rl.scale_rewards); "
           "a per-token importance ratio clipped to rl.epsilon/rl.epsilon_high on a reused batch")
    grouped = True

    def advantages(self, rewards: list[float], baseline: float | None) -> list[float]:
        """Each reward against its group's mean, divided by the group's std (rl.scale_rewards=group), the
        batch's (batch), or not at all (none: Dr. GRPO, which does not weight a question by how sure
        the model is of it)."""
        scale, group = self.rc.scale_rewards, self.group_size
        out = []
        batch_std = statistics.pstdev(rewards) if len(rewards) > 1 else 0.0
        for g in range(0, len(rewards), group):
            chunk = rewards[g : g + group]
            if max(chunk) == min(chunk):  # tied: exactly zero (r - mean can be 1e-16, which 1e-4 would scale up)
                out += [0.0] * len(chunk)
                continue
            mean = sum(chunk) / len(chunk)
            if scale == "none":
                out += [r - mean for r in chunk]
                continue
            std = batch_std if scale == "batch" else (statistics.pstdev(chunk) if len(chunk) > 1 else 0.0)
            out += [(r - mean) / (std + 1e-4) for r in chunk]
        return out


class GSPO(GRPO):
    """Group Sequence Policy Optimization (Zheng et al. 2025; TRL's importance_sampling_level="sequence"):
    GRPO's advantages, but one importance ratio per completion, s = exp(mean over its tokens of
    (log p - log p_old)), clipped to [1 - rl.gspo_epsilon, 1 + rl.gspo_epsilon_high], and the loss
    -min(s A, clip(s) A) averaged over completions (each weighs the same, whatever its length)."""

    name = "gspo"
    label = "GSPO (sequence ratio)"
    doc = ("gspo: GRPO's groups and advantages with one importance ratio per completion (the geometric mean "
           "of its tokens' ratios) clipped to rl.gspo_epsilon/rl.gspo_epsilon_high; each completion weighs the same")

    def row_loss(self, logps, old, adv: float, weights=None):
        import torch

        # batch used once: old = the same log-probs detached, so s = 1 with the gradient of the mean log p
        # (TRL does the same); a token-level sum would weigh long completions more
        # an empty completion (EOS first) has no tokens to average: s = 1 and no gradient (TRL clamps the count at 1)
        log_s = (logps - (logps.detach() if old is None else old)).sum() / max(logps.numel(), 1)
        s = torch.exp(log_s)
        clipped = s.clamp(1 - self.rc.gspo_epsilon, 1 + self.rc.gspo_epsilon_high)
        bit = None if old is None else float(clipped * adv < s * adv)
        loss = -torch.minimum(s * adv, clipped * adv)
        return (loss if weights is None else loss * weights), bit

    def sampler_weights(self, trainer, sampler, cap: float):
        """One weight per completion, as TRL's sequence-level modes (`sequence_truncate`): the
        completion's probability ratio exp(sum over its tokens of log p_trainer - log p_vLLM), capped
        at `cap`. A sequence loss takes a sequence's correction; per-token weights would break the
        single ratio GSPO keeps or clips as a whole."""
        import torch

        return torch.exp((trainer - sampler).sum()).clamp(max=cap).detach()

    def row_weight(self, n_tokens: float, rows: int) -> float:
        return n_tokens / rows  # rl.update divides the sum by the tokens: this makes it the mean over completions


def sampler_mismatch(algo: Algorithm, trainer: dict, completions: list, cap: float) -> tuple[dict, dict]:
    """The sampler/trainer correction of a batch: ({row: algo.sampler_weights}, metrics). `trainer`:
    rl.old_logprobs' {row: log-probs} under the weights that sampled; `completions` carry the
    sampler's (Completion.logprobs). A row without them, or of another length (an empty output,
    which the trainer scores as one EOS), keeps weight 1. Metrics: vllm_logprob_gap, the mean
    |trainer - sampler| over the compared tokens; vllm_is_capped, the share of weights at the cap."""
    import torch

    weights, gaps, capped, count = {}, [], 0, 0
    for i, lp in trainer.items():
        theirs = completions[i].logprobs
        if theirs is None or len(theirs) != len(lp):
            continue
        sampled = torch.tensor(theirs, dtype=lp.dtype, device=lp.device)
        w = algo.sampler_weights(lp, sampled, cap)
        weights[i] = w
        gaps.append((lp - sampled).abs())
        capped += int((w >= cap).sum())
        count += w.numel()
    if not gaps:
        return weights, {}
    return weights, {"vllm_logprob_gap": float(torch.cat(gaps).mean()), "vllm_is_capped": capped / count}


def tied_share(rewards: list[float], group: int) -> float:
    """The share of groups whose rewards all tie: they carry no learning signal."""
    groups = [rewards[g : g + group] for g in range(0, len(rewards), group)]
    return sum(1 for g in groups if max(g) == min(g)) / max(len(groups), 1)


ALGORITHMS: dict[str, type[Algorithm]] = {cls.name: cls for cls in (GRPO, Reinforce, GSPO)}  # the first: the default
NAMES = tuple(ALGORITHMS)


def for_config(cfg) -> Algorithm:
    """The run's algorithm (cfg.rl.algorithm), built from cfg.rl."""
    return ALGORITHMS[cfg.rl.algorithm](cfg.rl)
