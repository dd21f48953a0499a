"""Remove keys, tokens and passwords from text before it goes into a prompt.

Every match is replaced with ``[REDACTED]``; where a name tells what the value
is (``MINIO_SECRET_KEY=...``, ``password: ...``, ``Bearer ...``, a URL's
``user:pass@``) the name stays and only the value goes. Redacting twice gives
the same text as redacting once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from coredumps.config import AIAnalysisConfig
from coredumps.errors import ConfigError

REDACTED = "[REDACTED]"

_KEYWORDS = (
    r"(?:pass(?:word|wd|phrase)?|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key"
    r"|credentials?|auth(?:orization)?|session[_-]?key|signature)"
)
_QUOTED_OR_BARE = r"(\[REDACTED\]|\"[^\"\n]*\"|'[^'\n]*'|[^\s\"']+)"

Replacement = str | Callable[[re.Match[str]], str]

_BUILTIN: list[tuple[re.Pattern[str], Replacement]] = [
    (
        re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)"),
        REDACTED,
    ),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/:@]*:[^\s/]*@"), rf"\1{REDACTED}@"),
    (re.compile(r"(?i)(\bauthorization[\"']?\s*[:=]\s*[\"']?)(?!\[REDACTED\])[^\s\"',;]+(?:[ \t]+[^\s\"',;]+)?"),
     rf"\1{REDACTED}"),
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{6,}"), rf"\1 {REDACTED}"),
    (re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b"), REDACTED),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{12,}"), REDACTED),
    (re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})"), REDACTED),
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), REDACTED),
    (re.compile(r"\bAIza[0-9A-Za-z_-]{30,}"), REDACTED),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}(?:\.[A-Za-z0-9_-]*){0,2}"), REDACTED),
    (re.compile(r"\b[0-9a-f]{32}\.[A-Za-z0-9]{16}\b"), REDACTED),
    (re.compile(r"\b([A-Z][A-Z0-9_]{0,126}[A-Z0-9])=(?!=)" + _QUOTED_OR_BARE), rf"\1={REDACTED}"),
    (
        re.compile(
            r"(?i)\b([\w.-]{0,64}" + _KEYWORDS + r"[\w.-]{0,64}[\"']?\s*(?:=(?!=)|:(?!:))\s*)" + _QUOTED_OR_BARE
        ),
        rf"\1{REDACTED}",
    ),
]

_NEAR_KEYWORD = re.compile(r"(?i)\b(" + _KEYWORDS + r"|key)\w{0,64}[\"']?(\W{1,4})([A-Za-z0-9+/_=-]{20,})")


def _looks_random(run: str) -> bool:
    """A run of letters and digits mixed together, as keys are and words are not."""
    if run == REDACTED:
        return False
    if re.fullmatch(r"[0-9a-fA-F]{32,}", run):
        return True
    return any(c.isdigit() for c in run) and any(c.isalpha() for c in run)


def _redact_near_keyword(match: re.Match[str]) -> str:
    run = match.group(3)
    if not _looks_random(run):
        return match.group(0)
    return match.group(0)[: match.start(3) - match.start(0)] + REDACTED


_BUILTIN.append((_NEAR_KEYWORD, _redact_near_keyword))


class Redactor:
    """Callable that returns its text with secrets replaced by ``[REDACTED]``."""

    def __init__(self, patterns: Iterable[str] = (), secrets: Iterable[str | None] = ()) -> None:
        extra: list[tuple[re.Pattern[str], Replacement]] = []
        for pattern in patterns:
            try:
                extra.append((re.compile(pattern), REDACTED))
            except re.error as exc:
                raise ConfigError(f"aiAnalysis.redactPatterns: '{pattern}' is not a valid regular expression.") from exc
        self._rules = _BUILTIN + extra
        self._literals = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for literal in self._literals:
            text = text.replace(literal, REDACTED)
        for pattern, replacement in self._rules:
            text = pattern.sub(replacement, text)
        return text

    def __repr__(self) -> str:
        return f"Redactor({len(self._rules)} rules, {len(self._literals)} literal secrets)"


def redactor_for(cfg: AIAnalysisConfig, secrets: Iterable[str | None] = ()) -> Redactor:
    """The built-in rules plus ``aiAnalysis.redactPatterns``; ``secrets`` are removed verbatim."""
    return Redactor(cfg.redact_patterns, secrets)
