"""Seeds the emulator for the benchmarks: USERS users under PATH (default
/bench/), each with one active key, every other one with a second, inactive
key when INACTIVE is 1, and one SSM SecureString per user holding its active
key as JSON. Users are named NAME-00000... (default: PATH without its
slashes).

    plan-seed.py USERS [PATH] [INACTIVE] [NAME]
"""

import json
import sys
from concurrent.futures import ThreadPoolExecutor

import boto3

users = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
path = sys.argv[2] if len(sys.argv) > 2 else "/bench/"
inactive = (sys.argv[3] if len(sys.argv) > 3 else "1") == "1"
prefix = sys.argv[4] if len(sys.argv) > 4 else path.strip("/")
iam = boto3.client("iam")
ssm = boto3.client("ssm")


def seed(i):
    name = f"{prefix}-{i:05d}"
    iam.create_user(UserName=name, Path=path)
    if inactive and i % 2:
        old = iam.create_access_key(UserName=name)["AccessKey"]
        iam.update_access_key(UserName=name, AccessKeyId=old["AccessKeyId"], Status="Inactive")
    key = iam.create_access_key(UserName=name)["AccessKey"]
    value = json.dumps({"AccessKeyId": key["AccessKeyId"], "SecretAccessKey": key["SecretAccessKey"]})
    ssm.put_parameter(Name=f"{path}{name}/aws", Type="SecureString", Value=value)


with ThreadPoolExecutor(8) as pool:
    list(pool.map(seed, range(users)))
keys = users + (users // 2 if inactive else 0)
print(f"seeded {users} users under {path}, {keys} keys, {users} parameters")
