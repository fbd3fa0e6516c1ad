"""What a run will need before anything loads: memory per GPU (`engine plan`, a GPU run's check
before it loads) and time on a CPU (the new-run form, the run screen's time left). One module a job:

  memory.py    the memory model: per rank, the moments that peak (SFT step, RL update, decoding), part by part
  advice.py    what to change when the peak does not fit, the cheapest first
  fit.py       the estimate with that advice; micro-batches halved until the run fits, or grown where it
               fits with room (`grow`); `sized` for a GPU run
  render.py    a plan as the lines `engine plan` prints
  cputime.py   seconds per stage on a CPU like this project's, and the SFT examples counted for it

No torch anywhere here: the workbench's form imports this package. The names below are the ones
callers use (`from engine.plan import estimate, render`).
"""

from ..modelshape import SHAPE_LIMITS, BadModelConfig, Shape, folder_shape, shape_of_config
from .advice import advice
from .cputime import (COUNT_BYTES, CPU_EVAL_S_PER_PROBLEM, CPU_RL_S_PER_SAMPLE, CPU_SFT_S_PER_EXAMPLE, LOAD_S,
                      VARIANTS_PER_TRACE, count_lines, cpu_minutes, sft_examples, stage_seconds)
from .fit import estimate, fit, grow, sized
from .memory import (GIB, PROMPT_TOKENS, RUNTIME_CPU, RUNTIME_GPU, Moment, Part, Plan, checkpoint_bytes, held_while_decoding,
                     known_shape, peaks, rollout_rows, trained_params)
from .render import render

__all__ = ["COUNT_BYTES", "CPU_EVAL_S_PER_PROBLEM", "CPU_RL_S_PER_SAMPLE", "CPU_SFT_S_PER_EXAMPLE", "GIB", "LOAD_S",
           "PROMPT_TOKENS", "RUNTIME_CPU", "RUNTIME_GPU", "SHAPE_LIMITS", "VARIANTS_PER_TRACE", "BadModelConfig",
           "Moment", "Part", "Plan", "Shape", "advice", "checkpoint_bytes", "count_lines", "cpu_minutes", "estimate",
           "fit", "folder_shape", "grow", "held_while_decoding", "known_shape", "peaks", "render", "rollout_rows",
           "sft_examples", "shape_of_config", "sized", "stage_seconds", "trained_params"]
