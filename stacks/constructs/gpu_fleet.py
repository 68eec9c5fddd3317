"""AWS Batch managed EC2 GPU compute: a spot environment (when the environment wants spot) backed by an
on-demand environment later in the queue order, on the ECS GPU AMI, with NVMe instance storage mounted for
Isaac Sim's caches."""

from __future__ import annotations

from typing import ClassVar

import aws_cdk as cdk
from aws_cdk import aws_batch as batch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from constructs import Construct

from stacks.config import RenderSettings
from stacks.constructs.nag import acknowledge

_MOUNT_INSTANCE_STORE = """\
set -euo pipefail
# Mount the NVMe instance store (g5/g6/g6e carry one) for Isaac Sim's shader/kit caches and scratch space;
# several disks become one RAID0 volume. Hosts without one keep the folder on the root volume.
mkdir -p {mount}
disks=$(lsblk -dpno NAME,MODEL | awk '/Instance Storage/ {{print $1}}')
count=$(echo "$disks" | grep -c . || true)
if [ "$count" -gt 1 ]; then
  yum install -y -q mdadm
  mdadm --create /dev/md0 --level=0 --raid-devices="$count" $disks
  mkfs.xfs -f /dev/md0 && mount /dev/md0 {mount}
elif [ "$count" -eq 1 ]; then
  mkfs.xfs -f $disks && mount $disks {mount}
fi
mkdir -p {mount}/kit-cache {mount}/ov-cache {mount}/compute-cache {mount}/work
# Isaac Sim runs as uid 1234 in its image.
chown -R 1234:1234 {mount}
"""


class GpuFleet(Construct):
    INSTANCE_STORE_MOUNT: ClassVar[str] = "/mnt/isaac"
    ROOT_VOLUME_GIB: ClassVar[int] = 200
    """The Isaac Sim image is about 10 GB compressed and more than twice that extracted."""

    def __init__(
        self, scope: Construct, construct_id: str, *, vpc: ec2.IVpc, settings: RenderSettings, queue_name: str
    ) -> None:
        super().__init__(scope, construct_id)
        self.security_group = ec2.SecurityGroup(
            self,
            "Hosts",
            vpc=vpc,
            description="Batch GPU hosts: HTTPS out to the VPC endpoints only",
            allow_all_outbound=False,
        )
        # No NAT or internet gateway exists, so 443 out can only reach the VPC endpoints (the S3 gateway
        # endpoint's addresses are public, which is why the destination is not the VPC CIDR).
        self.security_group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "VPC endpoints and S3 gateway")

        user_data = ec2.MultipartUserData()
        user_data.add_user_data_part(
            ec2.UserData.custom(_MOUNT_INSTANCE_STORE.format(mount=self.INSTANCE_STORE_MOUNT)),
            ec2.MultipartBody.SHELL_SCRIPT,
            True,
        )
        # Batch requires MIME multipart user data in launch templates.
        self.launch_template = ec2.LaunchTemplate(
            self,
            "HostTemplate",
            user_data=user_data,
            require_imdsv2=True,
            # Hop limit 2: containers in bridge mode reach IMDS one hop further than the host.
            http_put_response_hop_limit=2,
            block_devices=[
                ec2.BlockDevice(
                    device_name="/dev/xvda",
                    volume=ec2.BlockDeviceVolume.ebs(
                        self.ROOT_VOLUME_GIB, encrypted=True, volume_type=ec2.EbsDeviceVolumeType.GP3
                    ),
                )
            ],
        )
        # The ECS container-instance role: AWS's managed policy is the documented one for ECS hosts and tracks
        # the agent's needs; our containers get their own job roles.
        self.instance_role = iam.Role(
            self,
            "InstanceRole",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name("service-role/AmazonEC2ContainerServiceforEC2Role")
            ],
        )
        acknowledge(
            self.instance_role,
            "AwsSolutions-IAM4",
            "AmazonEC2ContainerServiceforEC2Role is AWS's maintained policy for ECS container instances (agent only).",
            applies_to=(
                "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role",
            ),
        )
        instance_types = [ec2.InstanceType(name) for name in settings.instance_types]

        def environment(name: str, *, spot: bool, max_vcpus: int) -> batch.ManagedEc2EcsComputeEnvironment:
            return batch.ManagedEc2EcsComputeEnvironment(
                self,
                name,
                vpc=vpc,
                vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
                security_groups=[self.security_group],
                instance_types=instance_types,
                use_optimal_instance_classes=False,
                images=[batch.EcsMachineImage(image_type=batch.EcsMachineImageType.ECS_AL2_NVIDIA)],
                instance_role=self.instance_role,
                launch_template=self.launch_template,
                spot=spot,
                allocation_strategy=(
                    batch.AllocationStrategy.SPOT_PRICE_CAPACITY_OPTIMIZED
                    if spot
                    else batch.AllocationStrategy.BEST_FIT_PROGRESSIVE
                ),
                minv_cpus=0,
                maxv_cpus=max_vcpus,
                # Scale to zero between batches: GPU hosts are the largest cost here.
                replace_compute_environment=False,
            )

        ordered: list[batch.OrderedComputeEnvironment] = []
        if settings.use_spot:
            spot_environment = environment("Spot", spot=True, max_vcpus=settings.max_vcpus)
            ordered.append(batch.OrderedComputeEnvironment(compute_environment=spot_environment, order=1))
            on_demand = environment("OnDemand", spot=False, max_vcpus=settings.fallback_max_vcpus)
        else:
            on_demand = environment("OnDemand", spot=False, max_vcpus=settings.max_vcpus)
        # The on-demand environment comes last: Batch places jobs there only when spot capacity is exhausted.
        ordered.append(batch.OrderedComputeEnvironment(compute_environment=on_demand, order=len(ordered) + 1))
        self.queue = batch.JobQueue(self, "Queue", job_queue_name=queue_name, compute_environments=ordered)
        cdk.Tags.of(self).add("sim2cloud:fleet", "render")
