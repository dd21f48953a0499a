"""The value score (0-10): the original agent's rules, weights from config.

Each dimension's points are in the breakdown, the base included, so that the
points add up to the total before the cap. AI analysis never changes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from coredumps.diagnosis import Diagnosis
from coredumps.inputs import shown

if TYPE_CHECKING:
    from coredumps.config import AnalyzerConfig, ScoringConfig

SEVERE_SIGNALS = {11, 6, 8}  # SIGSEGV, SIGABRT, SIGFPE

DIMENSIONS = (
    "base",
    "crash_reason",
    "panic_keyword",
    "stack_trace",
    "multi_thread",
    "pod_association",
    "signal_severity",
    "file_size",
    "freshness",
)
_LABELS_EN = {
    "base": "base",
    "crash_reason": "crash reason",
    "panic_keyword": "panic keyword",
    "stack_trace": "stack trace",
    "multi_thread": "multi-thread",
    "pod_association": "pod association",
    "signal_severity": "signal severity",
    "file_size": "file size",
    "freshness": "freshness",
}
_LABELS_ZH = {
    "base": "基础分",
    "crash_reason": "崩溃原因",
    "panic_keyword": "Panic关键词",
    "stack_trace": "栈跟踪质量",
    "multi_thread": "多线程",
    "pod_association": "Pod关联",
    "signal_severity": "信号严重性",
    "file_size": "文件大小",
    "freshness": "新鲜度",
}


@dataclass(frozen=True)
class ScoreInput:
    crash_reason: str
    reason_known: bool
    stack_trace: str
    thread_count: int
    signal_number: int
    file_size: int
    age_seconds: float
    pod_known: bool
    instance_known: bool


@dataclass(frozen=True)
class Score:
    total: float
    breakdown: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, "breakdown": dict(self.breakdown)}


def has_panic_keyword(text: str, keywords: list[str]) -> bool:
    lowered = text.lower()
    return any(k and k.lower() in lowered for k in keywords)


def score(facts: ScoreInput, analyzer: AnalyzerConfig) -> Score:
    """Apply the rules; the total is rounded to two places and capped at scoring.maxScore."""
    w: ScoringConfig = analyzer.scoring
    points = {
        "base": w.base,
        "crash_reason": w.crash_reason if facts.reason_known else 0.0,
        "panic_keyword": w.panic_keyword if has_panic_keyword(facts.crash_reason, analyzer.panic_keywords) else 0.0,
        "stack_trace": w.stack_trace if len(facts.stack_trace) > w.stack_trace_min_chars else 0.0,
        "multi_thread": w.multi_thread if facts.thread_count > 1 else 0.0,
        "pod_association": w.pod_association if facts.pod_known and facts.instance_known else 0.0,
        "signal_severity": w.signal_severity if facts.signal_number in SEVERE_SIGNALS else 0.0,
        "file_size": w.file_size if facts.file_size > w.large_file_size else 0.0,
        "freshness": w.freshness if 0 <= facts.age_seconds < w.fresh_within else 0.0,
    }
    total = round(min(w.max_score, max(0.0, sum(points.values()))), 2)
    return Score(total=total, breakdown=points)


def score_diagnosis(
    diagnosis: Diagnosis,
    analyzer: AnalyzerConfig,
    *,
    age_seconds: float,
    pod_known: bool = False,
    instance_known: bool = False,
) -> Score:
    """Score an analysed core given what is known about its file and its pod."""
    return score(
        ScoreInput(
            crash_reason=diagnosis.crash_reason,
            reason_known=diagnosis.reason_known,
            stack_trace=diagnosis.stack_trace,
            thread_count=diagnosis.thread_count,
            signal_number=diagnosis.signal_number,
            file_size=diagnosis.file_size,
            age_seconds=max(0.0, age_seconds),
            pod_known=pod_known,
            instance_known=instance_known,
        ),
        analyzer,
    )


def breakdown_line(result: Score, subject: str, language: str = "en") -> str:
    """One log line: in English, or the original's Chinese form with ``zh``."""
    labels = _LABELS_ZH if language == "zh" else _LABELS_EN
    subject = shown(subject)
    parts = []
    for key in DIMENSIONS:
        value = result.breakdown.get(key, 0.0)
        if key == "base":
            parts.append(f"{labels[key]}: {value:.1f}")
        elif value:
            parts.append(f"{labels[key]}: +{value:.1f}")
    if language == "zh":
        return f"分数计算详情 [{subject}]: {', '.join(parts)} -> 总分: {result.total:.2f}"
    return f"Score breakdown [{subject}]: {', '.join(parts)} -> total: {result.total:.2f}"
