"""The pipeline on one machine: moto server as AWS, the real Lambda handlers, local Batch/SageMaker jobs."""
