"""Errors raised by the tracing engine. They carry no HTTP status: the API maps them."""

from __future__ import annotations

from dataclasses import dataclass, field


class TracingError(Exception):
    """Base of every error the engine raises on purpose."""


class PersonNotFound(TracingError):
    def __init__(self, person_id: str) -> None:
        super().__init__(f"person {person_id!r} is not in the graph")
        self.person_id = person_id


class CaseNotFound(TracingError):
    def __init__(self, case_id: str, reason: str = "is not in the graph") -> None:
        super().__init__(f"case {case_id!r} {reason}")
        self.case_id = case_id


class NoInfectiousWindow(TracingError):
    """The case has neither onset_at nor sampled_at, so its window cannot be placed."""

    def __init__(self, case_id: str) -> None:
        super().__init__(
            f"case {case_id!r} has neither onset_at nor sampled_at: its infectious window cannot be placed"
        )
        self.case_id = case_id


@dataclass(frozen=True)
class RowProblem:
    """One bad (or suspicious) input row: where it is and what is wrong with it."""

    file: str
    line: int
    reason: str
    severity: str = "error"  # "error" rejects the row; "warning" is reported, the row (as fixed) is kept

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.severity}: {self.reason}"


@dataclass
class ImportRejected(TracingError):
    """An import was refused: nothing of it was written."""

    problems: list[RowProblem] = field(default_factory=list)

    def __str__(self) -> str:
        errors = [p for p in self.problems if p.severity == "error"]
        head = f"import rejected, nothing written: {len(errors)} bad row(s)"
        return "\n".join([head, *(str(p) for p in errors[:20])] + ([f"... and {len(errors) - 20} more"] if len(errors) > 20 else []))
