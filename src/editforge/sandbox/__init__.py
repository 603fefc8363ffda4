"""Running untrusted programs in isolation."""

from editforge.sandbox.core import (
    Isolation,
    Limits,
    OUTCOMES,
    SANDBOX_SETTINGS,
    SandboxError,
    SandboxResult,
    run_many,
    run_program,
    select_isolation,
)

__all__ = ["Isolation", "Limits", "OUTCOMES", "SANDBOX_SETTINGS", "SandboxError", "SandboxResult", "run_many", "run_program", "select_isolation"]
