"""What teams run today over an Organization: for every account in the OU,
assume the rotation role, then read every user under /org/, its keys, each
key's last use, and the SSM parameter that should hold the active key, and
print how many users are due (a key older than MAX_AGE seconds at AS_OF).

    org-boto3.py OU MAX_AGE_SECONDS AS_OF THREADS

THREADS 1 is the sequential script; more reads users on a thread pool
(clients are made once per account and shared: boto3 clients are
thread-safe, sessions are not).
"""

import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import boto3

ou, max_age, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[4])
as_of = datetime.fromisoformat(sys.argv[3].replace("Z", "+00:00"))
started = time.monotonic()
calls = 0
lock = threading.Lock()


def count(n=1):
    global calls
    with lock:
        calls += n


org = boto3.client("organizations")
accounts = []
for page in org.get_paginator("list_accounts_for_parent").paginate(ParentId=ou):
    count()
    accounts += [a["Id"] for a in page["Accounts"] if a["State"] == "ACTIVE"]


def credentials(account):
    count()
    got = boto3.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/RekeyRotation", RoleSessionName="script"
    )["Credentials"]
    return {
        "aws_access_key_id": got["AccessKeyId"],
        "aws_secret_access_key": got["SecretAccessKey"],
        "aws_session_token": got["SessionToken"],
    }


def read(job):
    iam, ssm, name = job
    keys = iam.list_access_keys(UserName=name)["AccessKeyMetadata"]
    count()
    for key in keys:
        iam.get_access_key_last_used(AccessKeyId=key["AccessKeyId"])
        count()
    try:
        ssm.get_parameter(Name=f"/org/{name}/aws", WithDecryption=True)
    except ssm.exceptions.ParameterNotFound:
        pass
    count()
    active = [k for k in keys if k["Status"] == "Active"]
    return bool(active) and as_of - min(k["CreateDate"] for k in active) > timedelta(seconds=max_age)


jobs = []
for account in accounts:
    session = boto3.Session(**credentials(account))
    iam, ssm = session.client("iam"), session.client("ssm")
    for page in iam.get_paginator("list_users").paginate(PathPrefix="/org/"):
        count()
        jobs += [(iam, ssm, u["UserName"]) for u in page["Users"]]
with ThreadPoolExecutor(threads) as pool:
    due = sum(pool.map(read, jobs))
print(json.dumps({"accounts": len(accounts), "users": len(jobs), "due": due, "calls": calls,
                  "seconds": round(time.monotonic() - started, 2)}))
