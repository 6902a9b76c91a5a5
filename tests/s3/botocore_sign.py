#!/usr/bin/env python3
"""Signs requests with botocore's SigV4 signer (S3SigV4Auth), for the s3
tests to compare dcpp's signer with. Reads one JSON list of requests on
stdin: {"method", "url" (http: botocore hashes the body), "headers": {..}, "body", "amz_date",
"region", "access_key", "secret_key", "token"}; prints one Authorization
header per request, one per line."""
import datetime
import json
import sys
from unittest import mock

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def sign(r):
    creds = Credentials(r["access_key"], r["secret_key"], r.get("token") or None)
    req = AWSRequest(method=r["method"], url=r["url"], headers=dict(r["headers"]), data=r["body"].encode())
    when = datetime.datetime.strptime(r["amz_date"], "%Y%m%dT%H%M%SZ")
    with mock.patch("botocore.auth.get_current_datetime", return_value=when):
        S3SigV4Auth(creds, "s3", r["region"]).add_auth(req)
    return req.headers["Authorization"]


if __name__ == "__main__":
    for r in json.load(sys.stdin):
        print(sign(r))
