"""Seeds the emulator with a small demo account for workflows/ci-deployers.yaml.

- ci-deploy-1: one key, published in SSM at /apps/staging/ci-deploy-1/aws
- ci-deploy-2: one active key and an old inactive one (rekey deletes it
  to make room: the workflow says `make_room: delete_inactive`)
- ci-deploy-3: two active keys (blocked: no free slot)
- ci-legacy:   excluded by the workflow
- web-app:     not a CI user (outside /ci/)
- demo-api, demo-worker: under /demo/ for workflows/demo.yaml (the API's
  key is already published in SSM at /demo/demo-api/aws)
"""

import json

import boto3

iam = boto3.client("iam")
ssm = boto3.client("ssm")

def user(name, path="/ci/", tags=(("rotation", "enabled"),)):
    iam.create_user(UserName=name, Path=path, Tags=[{"Key": k, "Value": v} for k, v in tags])
    return name

def key(name):
    return iam.create_access_key(UserName=name)["AccessKey"]

first = key(user("ci-deploy-1"))
ssm.put_parameter(
    Name="/apps/staging/ci-deploy-1/aws",
    Type="SecureString",
    Value=json.dumps({"AccessKeyId": first["AccessKeyId"], "SecretAccessKey": first["SecretAccessKey"]}),
)
# An application uses ci-deploy-1's key: IAM records when, where and for what.
boto3.client("sts", aws_access_key_id=first["AccessKeyId"], aws_secret_access_key=first["SecretAccessKey"]).get_caller_identity()
user("ci-deploy-2")
old = key("ci-deploy-2")
iam.update_access_key(UserName="ci-deploy-2", AccessKeyId=old["AccessKeyId"], Status="Inactive")
key("ci-deploy-2")
user("ci-deploy-3")
key("ci-deploy-3")
key("ci-deploy-3")
key(user("ci-legacy"))
key(user("web-app", path="/apps/", tags=()))
api = key(user("demo-api", path="/demo/", tags=()))
ssm.put_parameter(
    Name="/demo/demo-api/aws",
    Type="SecureString",
    Value=json.dumps({"AccessKeyId": api["AccessKeyId"], "SecretAccessKey": api["SecretAccessKey"]}),
)
key(user("demo-worker", path="/demo/", tags=()))
print("Seeded 7 IAM users, 9 access keys and 2 SSM parameters.")
