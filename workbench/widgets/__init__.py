"""The run screen's panes. Each builds its own children and redraws from a `RunState`
(`show(...)`); none reads files of a live run or talks to threads."""

from .charts import Charts
from .evals import Evaluations
from .header import RunHeader
from .log import LogPane
from .report import ReportPane
from .samples import SamplesTable

__all__ = ["Charts", "Evaluations", "LogPane", "ReportPane", "RunHeader", "SamplesTable"]
