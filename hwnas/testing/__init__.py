"""Conformance suites a user's own search space (or strategy) runs in their own tests."""
from __future__ import annotations

from hwnas.testing._spaces import SPACE_CHECKS, CheckResult, check_space

__all__ = ["SPACE_CHECKS", "CheckResult", "check_space"]
