"""A real S3 API for the tests in this folder: moto's server on 127.0.0.1.

One server per test process (a random free port), started on first use. Each test gets
its own bucket, a boto3 client to inspect and tamper with it, and the environment that
points flowmake (s3fs, through the flowmake-s3 plugin) at the server: the standard AWS
variables, nothing flowmake-specific.
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@dataclass
class Bucket:
    """One test's bucket on the moto server."""

    name: str
    endpoint: str
    client: Any

    @property
    def env(self) -> dict[str, str | None]:
        """For flowmake subprocesses: the standard AWS settings, and nothing inherited."""
        return {**CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint, "AWS_ENDPOINT_URL_S3": None,
                "AWS_PROFILE": None, "AWS_SESSION_TOKEN": None, "AWS_MAX_ATTEMPTS": "2"}

    def url(self, key: str) -> str:
        return f"s3://{self.name}/{key}"

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name,
                                                                      Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def get(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.name, Key=key)["Body"].read()

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.name, Key=key, Body=data)

    @contextlib.contextmanager
    def restricted(self, actions: list[str]) -> Iterator[dict[str, str | None]]:
        """The environment of a user allowed only ``actions`` on this bucket, with moto
        enforcing IAM permissions inside the block (the test's own client, whose
        credentials IAM does not know, is refused there: use it before or after)."""
        import boto3
        from moto.core.authorization import enable_iam_authentication

        iam = boto3.client("iam", endpoint_url=self.endpoint, region_name="us-east-1",
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        user = f"u-{uuid.uuid4().hex[:8]}"
        iam.create_user(UserName=user)
        policy = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": actions,
            "Resource": [f"arn:aws:s3:::{self.name}", f"arn:aws:s3:::{self.name}/*"]}]}
        iam.put_user_policy(UserName=user, PolicyName="cache", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        with enable_iam_authentication():
            yield {**self.env, "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
                   "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}


@pytest.fixture
def bucket(s3_endpoint: str) -> Bucket:
    import boto3

    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    name = f"fm-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    return Bucket(name, s3_endpoint, client)
