"""The run screen's panes. Each builds its own children and redraws from a `RunState`
(`show(...)`); none reads files of a live run or talks to threads."""

from .charts import Charts
from .evals import Evaluations
from .header import RunHeader
from .log import LogPane
from .new_run import NewRunForm
from .overview import Overview
from .report import ReportPane
from .samples import SamplesPane, SamplesTable

__all__ = ["Charts", "Evaluations", "LogPane", "NewRunForm", "Overview", "ReportPane", "RunHeader", "SamplesPane", "SamplesTable"]
