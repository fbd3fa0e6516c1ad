"""The training phases: SFT, RL, evaluation. One flat loop each."""
