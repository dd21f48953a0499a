"""The pipeline's AI step for one coredump: decide, call within budget, and describe the outcome.

Never raises for an LLM failure or a missing key: the coredump is scored,
stored and recorded regardless, and the outcome says what happened.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from coredumps.ai import ChatClient, Outcome, analyze, api_key, record_skipped
from coredumps.ai.prompt import Restart
from coredumps.ai.secrets import key_env_name
from coredumps.config import AnalyzerConfig
from coredumps.db.models import AIAnalysisResult, RestartEvent
from coredumps.diagnosis import Diagnosis
from coredumps.errors import ConfigError
from coredumps.markdown import escape
from coredumps.records import Sessions


@dataclass(frozen=True)
class AINote:
    status: str
    text: str
    row_id: int | None = None


def recent_restarts(sessions: Sessions, instance: str | None, limit: int = 5) -> list[Restart]:
    if not instance:
        return []
    with sessions() as session:
        rows = session.scalars(
            select(RestartEvent).where(RestartEvent.instance_name == instance)
            .order_by(RestartEvent.detected_at.desc()).limit(limit)
        ).all()
    return [(r.finished_at or r.detected_at, r.exit_code, r.reason) for r in rows]


def describe(sessions: Sessions, outcome: Outcome) -> str:
    """Markdown of the analysis (escaped: the answer is untrusted text)."""
    if outcome.status not in ("ok", "reused"):
        return f"{outcome.status}: {escape(outcome.reason or '')}"
    with sessions() as session:
        row = session.get(AIAnalysisResult, outcome.row_id)
        if row is None:
            return outcome.status
        lines = [f"**Summary:** {escape(row.summary or '')}", "", f"**Root cause:** {escape(row.root_cause or '')}"]
        if row.impact:
            lines += ["", f"**Impact:** {escape(row.impact)}"]
        if row.recommendations:
            lines += ["", "**Recommendations:**"] + [f"- {escape(r)}" for r in row.recommendations]
        if row.confidence is not None:
            lines += ["", f"Confidence {row.confidence:.2f}; {row.prompt_tokens}+{row.completion_tokens} tokens, "
                          f"${row.cost_usd:.4f}" + (f" ({escape(outcome.reason)})" if outcome.reason else "")]
    return "\n".join(lines)


def ai_step(
    d: Diagnosis, analyzer: AnalyzerConfig, sessions: Sessions, *, coredump_id: int | None, crash_group_id: int | None,
    score: float, pod: str | None, instance: str | None, group_count: int,
) -> AINote:
    cfg = analyzer.ai_analysis
    if not cfg.enabled:
        return AINote("disabled", "AI analysis is off (analyzer.aiAnalysis.enabled)")
    if score < analyzer.value_threshold:
        return AINote("skipped", f"score {score:.2f} is below analyzer.valueThreshold; no AI analysis")
    try:
        key = api_key(cfg)
    except ConfigError as exc:
        key, problem = None, str(exc)
    else:
        problem = f"no API key: set {key_env_name(cfg)}" if key is None and cfg.provider != "openai-compatible" else ""
    if problem:
        row = record_skipped(sessions, coredump_id=coredump_id, crash_group_id=crash_group_id,
                             provider=cfg.provider, model=cfg.model, reason=problem)
        return AINote("skipped", escape(problem), row)
    with ChatClient(cfg, key) as client:
        outcome = analyze(d, cfg=cfg, sessions=sessions, client=client, coredump_id=coredump_id,
                          crash_group_id=crash_group_id, pod=pod, instance=instance, group_count=group_count,
                          recent_restarts=recent_restarts(sessions, instance))
    return AINote(outcome.status, describe(sessions, outcome), outcome.row_id)
