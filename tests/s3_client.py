#!/usr/bin/env python3
"""An independent S3 client (boto3) for the s3 sink's tests, against SeaweedFS on loopback.

    s3_client.py ENDPOINT create BUCKET
    s3_client.py ENDPOINT dump BUCKET [PREFIX]

`dump` prints one JSON object per stored object: key, size, ETag, Content-Type,
Content-Encoding and the body in base64 (the test decompresses it).
"""

import base64
import json
import sys
import time

import boto3
import botocore.config

KEY, SECRET = "sluicetest", "sluicetestsecret"


def client(endpoint):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
        region_name="us-east-1",
        config=botocore.config.Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1},
            connect_timeout=5,
            read_timeout=30,
        ),
    )


def create(s3, bucket):
    # A fresh server takes a moment before its volume servers accept writes.
    deadline = time.time() + 60
    while True:
        try:
            s3.create_bucket(Bucket=bucket)
            s3.put_object(Bucket=bucket, Key="ready", Body=b"")
            s3.delete_object(Bucket=bucket, Key="ready")
            return
        except Exception as error:  # noqa: BLE001 - retried until the deadline
            if time.time() > deadline:
                raise SystemExit(f"bucket {bucket} not usable: {error}")
            time.sleep(0.2)


def dump(s3, bucket, prefix):
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            got = s3.get_object(Bucket=bucket, Key=item["Key"])
            body = got["Body"].read()
            print(
                json.dumps(
                    {
                        "key": item["Key"],
                        "size": item["Size"],
                        "etag": got.get("ETag", ""),
                        "content_type": got.get("ContentType", ""),
                        "content_encoding": got.get("ContentEncoding", ""),
                        "body": base64.b64encode(body).decode(),
                    }
                )
            )


def main():
    endpoint, command, bucket = sys.argv[1], sys.argv[2], sys.argv[3]
    s3 = client(endpoint)
    if command == "create":
        create(s3, bucket)
    elif command == "dump":
        dump(s3, bucket, sys.argv[4] if len(sys.argv) > 4 else "")
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main()
