"""Read an LLM reply into the fields of the original's AIAnalysisResult.

The reply is untrusted text. Only the fixed fields are read (summary,
rootCause, impact, recommendations, confidence, codeSuggestions,
relatedIssues); anything else in it is ignored. The JSON object may stand
bare, sit in a ```json fenced block or be surrounded by prose. Types are
checked, strings lose control characters and are cut to a bounded length,
confidence is clamped to 0..1. A reply with no usable object raises
``AIAnswerError`` carrying a truncated copy of the reply for the record.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from dataclasses import asdict, dataclass, field
from typing import Any

from coredumps.errors import PermanentError

EXCERPT_CHARS = 2000
_MAX_LIST_ITEMS = 20
_MAX_SUGGESTIONS = 10
_MAX_OBJECT_SCANS = 50
_LIMITS = {"summary": 1000, "root_cause": 4000, "impact": 2000, "item": 1000, "file": 500, "code": 4000}
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_-]*)[ \t]*\r?\n(.*?)```", re.DOTALL)
_BIDI = {"\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"}


class AIAnswerError(PermanentError):
    """The reply holds no usable analysis; ``raw_excerpt`` is what to store."""

    def __init__(self, reason: str, raw: str = "") -> None:
        super().__init__(f"the LLM answer cannot be used: {reason}")
        self.reason = reason
        self.raw_excerpt = excerpt(raw)


@dataclass(frozen=True)
class CodeSuggestion:
    file: str
    suggestion: str
    line: int | None = None
    function: str | None = None
    issue: str | None = None
    code: str | None = None
    priority: str | None = None


@dataclass(frozen=True)
class AIAnswer:
    summary: str
    root_cause: str
    impact: str = ""
    recommendations: list[str] = field(default_factory=list)
    confidence: float | None = None
    code_suggestions: list[CodeSuggestion] = field(default_factory=list)
    related_issues: list[str] = field(default_factory=list)

    def to_row(self) -> dict[str, Any]:
        """Column values of ``ai_analysis_results``."""
        return {
            "summary": self.summary,
            "root_cause": self.root_cause,
            "impact": self.impact,
            "recommendations": list(self.recommendations),
            "confidence": self.confidence,
            "code_suggestions": [_compact(asdict(s)) for s in self.code_suggestions],
            "related_issues": list(self.related_issues),
        }


def excerpt(raw: str, limit: int = EXCERPT_CHARS) -> str:
    """At most ``limit`` characters of ``raw``, control characters removed."""
    text = clean_text(raw or "")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def clean_text(value: str, limit: int | None = None) -> str:
    """Strip control and bidi characters (keeping newlines and tabs), trim, bound the length."""
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    kept = "".join(
        ch
        for ch in value
        if ch in "\n\t" or (unicodedata.category(ch) not in {"Cc", "Cs"} and ch not in _BIDI)
    ).strip()
    if limit is not None and len(kept) > limit:
        kept = kept[: limit - 1].rstrip() + "…"
    return kept


def parse_answer(text: str) -> AIAnswer:
    """The analysis in ``text``; raises ``AIAnswerError`` with the reason when there is none."""
    if not text or not text.strip():
        raise AIAnswerError("the reply is empty", text)
    data = _find_object(text)
    try:
        summary = _text(data, "summary", _LIMITS["summary"], "summary")
        root_cause = _text(data, "rootCause", _LIMITS["root_cause"], "rootCause", "root_cause")
        if not summary and not root_cause:
            raise AIAnswerError("the JSON object has neither a summary nor a rootCause", text)
        return AIAnswer(
            summary=summary,
            root_cause=root_cause,
            impact=_text(data, "impact", _LIMITS["impact"], "impact"),
            recommendations=_strings(data, "recommendations", "recommendations"),
            confidence=_confidence(data.get("confidence")),
            code_suggestions=_suggestions(data, "codeSuggestions", "code_suggestions"),
            related_issues=_strings(data, "relatedIssues", "relatedIssues", "related_issues"),
        )
    except _FieldError as exc:
        raise AIAnswerError(str(exc), text) from None


class _FieldError(ValueError):
    pass


def _find_object(text: str) -> dict[str, Any]:
    candidates = [body for tag, body in _FENCE.findall(text) if tag.lower() in {"json", ""}]
    candidates.sort(key=lambda body: not body.lstrip().startswith("{"))
    candidates.append(text.strip())
    last_error = ""
    for candidate in candidates:
        try:
            value = loads_untrusted(candidate)
        except ValueError as exc:
            last_error = _describe_json_error(exc)
            continue
        if isinstance(value, dict) and _has_fields(value):
            return value
    decoder = json.JSONDecoder()
    for scans, match in enumerate(re.finditer(r"\{", text)):
        if scans >= _MAX_OBJECT_SCANS:
            break
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except RecursionError:
            continue
        except ValueError as exc:
            last_error = last_error or _describe_json_error(exc)
            continue
        if isinstance(value, dict) and _has_fields(value):
            return value
    if "{" not in text:
        raise AIAnswerError("the reply holds no JSON object", text)
    if last_error:
        raise AIAnswerError(f"the reply holds no valid JSON object with the asked fields ({last_error})", text)
    raise AIAnswerError("the reply's JSON has none of the asked fields (summary, rootCause, ...)", text)


def loads_untrusted(text: str) -> Any:
    """``json.loads`` for what an endpoint or a model sent: nesting too deep for Python is a ValueError too."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def _describe_json_error(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    return "not JSON"


def _has_fields(value: dict[str, Any]) -> bool:
    return any(key in value for key in ("summary", "rootCause", "root_cause"))


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "a string"


def _lookup(data: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if key in data:
            return data[key]
    return None


def _text(data: dict[str, Any], name: str, limit: int, *keys: str) -> str:
    value = _lookup(data, *keys)
    if value is None:
        return ""
    if isinstance(value, str):
        return clean_text(value, limit)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return clean_text("\n".join(value), limit)
    raise _FieldError(f"'{name}' must be a string, got {_kind(value)}")


def _strings(data: dict[str, Any], name: str, *keys: str) -> list[str]:
    value = _lookup(data, *keys)
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise _FieldError(f"'{name}' must be a list of strings, got {_kind(value)}")
    items: list[str] = []
    for raw in value[:_MAX_LIST_ITEMS]:
        item = raw
        if isinstance(raw, dict):
            item = " ".join(str(v) for v in raw.values() if isinstance(v, (str, int, float)))
        elif isinstance(raw, (int, float)) and not isinstance(raw, bool):
            item = str(raw)
        if not isinstance(item, str):
            raise _FieldError(f"'{name}' must be a list of strings, got an item that is {_kind(item)}")
        cleaned = clean_text(item, _LIMITS["item"])
        if cleaned:
            items.append(cleaned)
    return items


def _confidence(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        raw = value.strip()
        percent = raw.endswith("%")
        try:
            number = float(raw.rstrip("%").strip())
        except ValueError:
            raise _FieldError(f"'confidence' must be a number from 0 to 1, got {value[:40]!r}") from None
        value = number / 100 if percent else number
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _FieldError(f"'confidence' must be a number from 0 to 1, got {_kind(value)}")
    if not math.isfinite(value):
        raise _FieldError("'confidence' must be a finite number")
    return min(1.0, max(0.0, float(value)))


def _suggestions(data: dict[str, Any], *keys: str) -> list[CodeSuggestion]:
    value = _lookup(data, *keys)
    if value is None:
        return []
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise _FieldError(f"'codeSuggestions' must be a list of objects, got {_kind(value)}")
    found: list[CodeSuggestion] = []
    for item in value:
        if len(found) >= _MAX_SUGGESTIONS:
            break
        suggestion = _suggestion(item)
        if suggestion is not None:
            found.append(suggestion)
    return found


def _suggestion(item: Any) -> CodeSuggestion | None:
    if isinstance(item, str):
        cleaned = clean_text(item, _LIMITS["code"])
        return CodeSuggestion(file="", suggestion=cleaned) if cleaned else None
    if not isinstance(item, dict):
        return None

    def text(limit: int, *keys: str) -> str | None:
        value = _lookup(item, *keys)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            return None
        return clean_text(value, limit) or None

    issue = text(_LIMITS["item"], "issue", "problem")
    suggestion = text(_LIMITS["code"], "suggestion", "description", "fix") or issue
    code = text(_LIMITS["code"], "code", "patch", "snippet")
    if not suggestion and not code:
        return None
    return CodeSuggestion(
        file=text(_LIMITS["file"], "file", "path", "filename") or "",
        suggestion=suggestion or "",
        line=_line(_lookup(item, "line", "lineNumber", "line_number")),
        function=text(_LIMITS["file"], "function", "func"),
        issue=issue,
        code=code,
        priority=text(32, "priority", "severity"),
    )


def _line(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and 0 < value < 10**9:
        return value
    return None


def _compact(data: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in data.items() if value is not None}
