"""``python -m sim2cloud.training``: the SageMaker entrypoint with the base dir from the environment."""

import os
import sys

from sim2cloud.contract import Env
from sim2cloud.job_log import job_output
from sim2cloud.training.job import SCRATCH_PREFIX, paths_from_environment, run_job

if __name__ == "__main__":
    with job_output("training-job", level=os.environ.get(Env.LOG_LEVEL, "INFO"), scratch_prefix=SCRATCH_PREFIX):
        status = run_job(paths_from_environment(os.environ), os.environ)
    sys.exit(status)
