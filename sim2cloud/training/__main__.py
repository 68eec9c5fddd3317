"""``python -m sim2cloud.training``: the SageMaker entrypoint with the base dir from the environment."""

import os
import sys

from sim2cloud.training.job import paths_from_environment, run_job

if __name__ == "__main__":
    sys.exit(run_job(paths_from_environment(os.environ), os.environ))
