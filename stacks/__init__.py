"""CDK stacks of Sim-to-Cloud, one per lifecycle (storage, monitoring, render, training, endpoint, CI access)."""
