"""An S3 API server for the tests: moto's, on 127.0.0.1.

Usage: s3_server.py PORT BUCKET
Starts moto's threaded server, creates BUCKET, prints "ready" and serves
until stdin closes (the test holds the pipe and kills it on drop).
"""
import sys

import boto3
from moto.server import ThreadedMotoServer


def main() -> None:
    port, bucket = int(sys.argv[1]), sys.argv[2]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    s3 = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    )
    s3.create_bucket(Bucket=bucket)
    print("ready", flush=True)
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main()
