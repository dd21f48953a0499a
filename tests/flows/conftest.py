"""The flows use the storage tests' real S3 API (moto's server on loopback)."""

from tests.storage.conftest import aws_env, bucket, moto_server, s3client

__all__ = ["aws_env", "bucket", "moto_server", "s3client"]
