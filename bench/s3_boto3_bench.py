#!/usr/bin/env python3
"""boto3's transfer manager on the same bytes as `dcpp bench --dir s3://...`.

  s3_boto3_bench.py <endpoint> <bucket> <prefix> <objects> <bytes per object>

Uploads <objects> objects of random bytes concurrently (one thread each,
every one through upload_fileobj with boto3's default TransferConfig:
8 MiB parts, 10 threads), then downloads them (download_fileobj), checks
the bytes and removes them. Prints "upload_seconds <s>" and
"download_seconds <s>". Credentials and region come from the environment.
"""
import io
import os
import sys
import threading
import time

import boto3


def main():
    endpoint, bucket, prefix, objects, size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    s3 = boto3.client("s3", endpoint_url=endpoint)
    payloads = [os.urandom(size) for _ in range(objects)]
    keys = [f"{prefix}/boto3-{i}.bin" for i in range(objects)]

    def run(fn):
        threads = [threading.Thread(target=fn, args=(i,)) for i in range(objects)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return time.perf_counter() - t0

    up = run(lambda i: s3.upload_fileobj(io.BytesIO(payloads[i]), bucket, keys[i]))
    got = [io.BytesIO() for _ in range(objects)]
    down = run(lambda i: s3.download_fileobj(bucket, keys[i], got[i]))
    for i in range(objects):
        if got[i].getvalue() != payloads[i]:
            print(f"boto3 downloaded different bytes for {keys[i]}", file=sys.stderr)
            return 1
        s3.delete_object(Bucket=bucket, Key=keys[i])
    print(f"upload_seconds {up}\ndownload_seconds {down}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
