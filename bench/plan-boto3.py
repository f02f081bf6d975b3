"""What teams run today: a sequential boto3 script that reads the same data
rekey's plan reads (users under /bench/, their keys, each key's last use, and
the SSM parameter that should hold the active key) and prints what is due."""

import json
import sys
import time
from datetime import datetime, timedelta, timezone

import boto3

started = time.monotonic()
iam = boto3.client("iam")
ssm = boto3.client("ssm")
calls = 0
due = 0
as_of = datetime.now(timezone.utc) + timedelta(days=365)
for page in iam.get_paginator("list_users").paginate(PathPrefix="/bench/"):
    calls += 1
    for user in page["Users"]:
        name = user["UserName"]
        keys = iam.list_access_keys(UserName=name)["AccessKeyMetadata"]
        calls += 1
        for key in keys:
            iam.get_access_key_last_used(AccessKeyId=key["AccessKeyId"])
            calls += 1
        try:
            value = ssm.get_parameter(Name=f"/bench/{name}/aws", WithDecryption=True)["Parameter"]["Value"]
            held = json.loads(value).get("AccessKeyId")
        except ssm.exceptions.ParameterNotFound:
            held = None
        calls += 1
        active = [k for k in keys if k["Status"] == "Active"]
        if active and as_of - min(k["CreateDate"] for k in active) > timedelta(days=90):
            due += 1
print(json.dumps({"due": due, "calls": calls, "seconds": round(time.monotonic() - started, 2)}))
