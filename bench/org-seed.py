"""Seeds an AWS Organization on the emulator: ACCOUNTS member accounts (made
with organizations:CreateAccount in one OU, tagged rotation=enabled), each
with USERS users under /org/ holding one active key and an SSM SecureString
`/org/<user>/aws` with it. With AGE `old`, only the first DUE users of each
account are seeded (their keys become the old ones); with `new`, the rest.
The management account is the caller's; accounts are reached by assuming
`RekeyRotation` (the emulator does not check roles).

    org-seed.py ACCOUNTS USERS DUE old|new

Prints the member account ids, one per line (`old` creates them, `new`
reads them back from the OU).
"""

import json
import sys
from concurrent.futures import ThreadPoolExecutor

import boto3

accounts, users, due, age = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
org = boto3.client("organizations")

if age == "old":
    try:
        org.create_organization(FeatureSet="ALL")
    except org.exceptions.AlreadyInOrganizationException:
        pass
    root = org.list_roots()["Roots"][0]["Id"]
    ou = org.create_organizational_unit(ParentId=root, Name="bench")["OrganizationalUnit"]["Id"]
    ids = []
    for i in range(accounts):
        made = org.create_account(Email=f"bench-{i}@example.com", AccountName=f"bench-{i}")
        account = made["CreateAccountStatus"]["AccountId"]
        org.move_account(AccountId=account, SourceParentId=root, DestinationParentId=ou)
        org.tag_resource(ResourceId=account, Tags=[{"Key": "rotation", "Value": "enabled"}])
        ids.append(account)
else:
    root = org.list_roots()["Roots"][0]["Id"]
    ou = next(
        o["Id"]
        for o in org.list_organizational_units_for_parent(ParentId=root)["OrganizationalUnits"]
        if o["Name"] == "bench"
    )
    ids = sorted(a["Id"] for a in org.list_accounts_for_parent(ParentId=ou)["Accounts"])


def session(account):
    credentials = boto3.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/RekeyRotation", RoleSessionName="seed"
    )["Credentials"]
    return boto3.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )


def seed(job):
    account, i = job
    s = sessions[account]
    name = f"user-{i:05d}"
    s.client("iam").create_user(UserName=name, Path="/org/")
    key = s.client("iam").create_access_key(UserName=name)["AccessKey"]
    value = json.dumps({"AccessKeyId": key["AccessKeyId"], "SecretAccessKey": key["SecretAccessKey"]})
    s.client("ssm").put_parameter(Name=f"/org/{name}/aws", Type="SecureString", Value=value)


sessions = {account: session(account) for account in ids}
numbers = range(due) if age == "old" else range(due, users)
with ThreadPoolExecutor(8) as pool:
    list(pool.map(seed, [(a, i) for a in ids for i in numbers]))
print(json.dumps({"ou": ou, "accounts": ids}))
