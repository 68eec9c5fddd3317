#!/usr/bin/env python3
"""CDK entry point: ``npx cdk synth -c env=dev`` (or prod). Builds every stack of one environment."""

from stacks.pipeline import build_app  # importing stacks selects the pinned Node 22 for jsii

if __name__ == "__main__":
    app, _ = build_app()
    app.synth()
