"""Seeds the emulator for the plan benchmark: USERS users under /bench/,
each with one active key, every other one with a second, inactive key, and
one SSM SecureString per user holding its active key as JSON."""

import json
import sys
from concurrent.futures import ThreadPoolExecutor

import boto3

users = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
iam = boto3.client("iam")
ssm = boto3.client("ssm")


def seed(i):
    name = f"bench-{i:05d}"
    iam.create_user(UserName=name, Path="/bench/")
    if i % 2:
        old = iam.create_access_key(UserName=name)["AccessKey"]
        iam.update_access_key(UserName=name, AccessKeyId=old["AccessKeyId"], Status="Inactive")
    key = iam.create_access_key(UserName=name)["AccessKey"]
    value = json.dumps({"AccessKeyId": key["AccessKeyId"], "SecretAccessKey": key["SecretAccessKey"]})
    ssm.put_parameter(Name=f"/bench/{name}/aws", Type="SecureString", Value=value)


with ThreadPoolExecutor(8) as pool:
    list(pool.map(seed, range(users)))
print(f"seeded {users} users, {users + users // 2} keys, {users} parameters")
