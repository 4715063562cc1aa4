"""
Replays what the fuzzers (fuzz/, `make fuzz`) found, from tests/regress/:
config/*.conf through `postdoc check-config`, which must answer with
file:line and exit 1, never crash.  Under the sanitizer build LeakSanitizer
reads fuzz/lsan.supp: libconfig 1.5 itself leaks its scanner's string
buffer on some syntax errors (libconfig-scanner-leak.conf).
"""
import os
import subprocess

import pytest

import postdoc_harness as H

REGRESS = H.SRCDIR / "tests" / "regress"
CONFIGS = sorted((REGRESS / "config").glob("*.conf"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_config_found_by_fuzzing(path):
    env = dict(os.environ, LSAN_OPTIONS="suppressions=%s"
               % (H.SRCDIR / "fuzz" / "lsan.supp"))
    p = subprocess.run(H.WRAPPER + [H.BIN, "--config", str(path),
                                    "check-config"],
                       capture_output=True, text=True, env=env,
                       timeout=H.T(30), errors="replace")
    assert p.returncode == 1, (p.returncode, p.stderr[-2000:])
    assert str(path) + ":" in p.stderr + p.stdout
    for mark in H.SANITIZER_MARKS:
        assert mark not in p.stderr, p.stderr[-2000:]
