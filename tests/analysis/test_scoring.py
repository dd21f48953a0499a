"""The value score: the original's rules, exactly, with a breakdown that adds up."""

from __future__ import annotations

import dataclasses

import pytest

from coredumps.config import AnalyzerConfig, ScoringConfig
from coredumps.scoring import DIMENSIONS, ScoreInput, breakdown_line, score

CFG = AnalyzerConfig()
EMPTY = ScoreInput(
    crash_reason="unknown: the core records no signal",
    reason_known=False,
    stack_trace="",
    thread_count=1,
    signal_number=0,
    file_size=1000,
    age_seconds=7200,
    pod_known=False,
    instance_known=False,
)


@pytest.mark.parametrize(
    ("change", "dimension", "points"),
    [
        ({"reason_known": True, "crash_reason": "Bus error (SIGBUS)"}, "crash_reason", 2.0),
        ({"crash_reason": "Go runtime panic"}, "panic_keyword", 1.0),
        ({"crash_reason": "FATAL: index corrupt"}, "panic_keyword", 1.0),
        ({"stack_trace": "x" * 101}, "stack_trace", 1.5),
        ({"stack_trace": "x" * 100}, "stack_trace", 0.0),
        ({"thread_count": 2}, "multi_thread", 0.5),
        ({"pod_known": True, "instance_known": True}, "pod_association", 1.0),
        ({"pod_known": True}, "pod_association", 0.0),
        ({"signal_number": 11}, "signal_severity", 1.0),
        ({"signal_number": 6}, "signal_severity", 1.0),
        ({"signal_number": 8}, "signal_severity", 1.0),
        ({"signal_number": 7}, "signal_severity", 0.0),
        ({"file_size": 100_000_001}, "file_size", 0.5),
        ({"file_size": 100_000_000}, "file_size", 0.0),
        ({"age_seconds": 3599}, "freshness", 0.5),
        ({"age_seconds": 3600}, "freshness", 0.0),
    ],
)
def test_each_rule_earns_its_points(change: dict, dimension: str, points: float) -> None:  # type: ignore[type-arg]
    result = score(dataclasses.replace(EMPTY, **change), CFG)
    assert result.breakdown[dimension] == points
    assert result.total == pytest.approx(4.0 + points)


def test_unknown_reason_earns_nothing_but_base() -> None:
    result = score(EMPTY, CFG)
    assert result.total == 4.0
    assert list(result.breakdown) == list(DIMENSIONS)
    assert all(v == 0.0 for k, v in result.breakdown.items() if k != "base")


def test_everything_is_capped_at_ten_and_breakdown_adds_up_before_the_cap() -> None:
    full = ScoreInput(
        crash_reason="SIGSEGV panic",
        reason_known=True,
        stack_trace="x" * 500,
        thread_count=8,
        signal_number=11,
        file_size=10**9,
        age_seconds=10,
        pod_known=True,
        instance_known=True,
    )
    result = score(full, CFG)
    assert sum(result.breakdown.values()) == pytest.approx(12.0)
    assert result.total == 10.0


def test_weights_come_from_config() -> None:
    cfg = AnalyzerConfig(scoring=ScoringConfig(base=1.0, signal_severity=3.0))
    result = score(dataclasses.replace(EMPTY, signal_number=11), cfg)
    assert result.total == 4.0 and result.breakdown["base"] == 1.0


def test_breakdown_line_in_english_and_in_the_original_chinese_form() -> None:
    result = score(
        dataclasses.replace(
            EMPTY, reason_known=True, crash_reason="SIGSEGV", stack_trace="x" * 200, pod_known=True, instance_known=True
        ),
        CFG,
    )
    assert breakdown_line(result, "/c", "en") == (
        "Score breakdown [/c]: base: 4.0, crash reason: +2.0, panic keyword: +1.0, stack trace: +1.5, "
        "pod association: +1.0 -> total: 9.50"
    )
    assert breakdown_line(result, "/c", "zh") == (
        "分数计算详情 [/c]: 基础分: 4.0, 崩溃原因: +2.0, Panic关键词: +1.0, 栈跟踪质量: +1.5, Pod关联: +1.0 -> 总分: 9.50"
    )
