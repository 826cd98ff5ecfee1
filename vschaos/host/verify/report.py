"""The result of a verification: one :class:`Check` per item, gathered in a :class:`VerifyReport`."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional


@dataclass
class Check:
    """One verification item; ``problems`` lists each failing case (method, buffer, batch, ...)."""

    name: str
    method: Optional[str]
    passed: bool
    summary: str
    problems: List[str] = field(default_factory=list)
    warning: bool = False


@dataclass
class VerifyReport:
    """Structured result of :func:`verify_model`; ``ok`` is True only if every check passed."""

    path: Optional[str]
    buffers: List[int]
    batch_sizes: List[int]
    tolerance: float
    signal_length: int
    checks: List[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def failures(self) -> List[Check]:
        return [check for check in self.checks if not check.passed]

    def add(self, name: str, method: Optional[str], problems: List[str], summary: str, warning: bool = False) -> None:
        self.checks.append(Check(name, method, not problems, summary, problems, warning))

    def to_dict(self) -> Dict[str, object]:
        data = asdict(self)
        data["ok"] = self.ok
        return data

    def format(self, max_problems: int = 8) -> str:
        lines = [f"verify {self.path or '<in-memory module>'}",
                 f"  buffers {self.buffers}, batch sizes {self.batch_sizes}, test signal {self.signal_length} "
                 f"samples, tolerance {self.tolerance:g} x max(1, peak)"]
        for check in self.checks:
            status = "PASS" if check.passed else "FAIL"
            if check.passed and check.warning:
                status = "WARN"
            where = f"[{check.method}] " if check.method else ""
            lines.append(f"{status} {where}{check.name}: {check.summary}")
            for problem in check.problems[:max_problems]:
                lines.append(f"     - {problem}")
            if len(check.problems) > max_problems:
                lines.append(f"     - ... and {len(check.problems) - max_problems} more")
        failed = len(self.failures)
        lines.append("RESULT: OK" if self.ok else f"RESULT: FAILED ({failed} of {len(self.checks)} checks)")
        return "\n".join(lines)
