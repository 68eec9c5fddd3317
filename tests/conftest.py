"""Suite-wide rule: torch and an EGL renderer never share a test process.

Importing torch's compiler stack (triton, with its own LLVM) into a process holding a Mesa EGL context
(llvmpipe's LLVM) segfaults, and pytest-xdist may run a GL test file and a training test file in one worker
in either order. Production code keeps them in separate processes; a test that needs Ultralytics runs it in a
child (tests/integration/ultralytics_child.py). This hook turns a would-be random crash into a clear failure
naming the test that broke the rule.
"""

from __future__ import annotations

import sys

import pytest


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    if "torch" in sys.modules and "moderngl" in sys.modules:
        pytest.fail(
            f"{item.nodeid}: torch and moderngl are both imported in this test process; run Ultralytics/torch "
            "in a child process (see tests/integration/ultralytics_child.py)",
            pytrace=False,
        )
