import pytest

from udarts.engine.runs import Run


@pytest.fixture
def crash_after_logging_epoch(monkeypatch):
    """Make the run die right after it logs epoch ``n``, before that epoch's checkpoint."""

    def arm(n):
        original = Run.log

        def log_then_crash(self, record, step):
            original(self, record, step)
            if record.get("epoch") == n:
                raise KeyboardInterrupt

        monkeypatch.setattr(Run, "log", log_then_crash)
        return lambda: monkeypatch.setattr(Run, "log", original)

    return arm
