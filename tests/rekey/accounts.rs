//! Many accounts: a workflow fanned out over an AWS Organization through
//! AssumeRole, against the emulator (AssumeRole into another account id
//! returns that account's view; Organizations accounts and OUs are real).
//! The emulator assumes any role, so an account rekey cannot reach is made
//! through the fault proxy, which denies AssumeRole of one role ARN.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

use crate::account::{Account, CANARY};
use crate::emulator::{emulator, fault_proxy};
use crate::support::Rekey;

/// A three-account Organization under its own management account:
/// accounts `a` and `b` in OU `rotate`, tagged `rotation: enabled`;
/// `untagged` in that OU without the tag; `excluded` tagged but excluded.
/// Each account (the management one too) has two users with one key each
/// and an SSM parameter holding the key.
struct Org {
    management: Account,
    management_id: String,
    ou: String,
    /// Member accounts by short name: (id, the account reached as itself).
    members: BTreeMap<&'static str, (String, Account)>,
    /// (account id, user, old key id)
    users: Vec<(String, String, String)>,
    dir: tempfile::TempDir,
}

/// A 12-digit account id no other test uses.
pub fn fresh_account_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = u64::from(std::process::id()) * 1000 + NEXT.fetch_add(1, Ordering::Relaxed);
    format!("9{:011}", n % 100_000_000_000)
}

impl Org {
    fn new() -> Self {
        Self::seeded(false)
    }

    /// With `same_names`, every account's users are `deploy` and `ci`, as
    /// in real Organizations: the same name is a different user in each.
    fn seeded(same_names: bool) -> Self {
        let management_id = fresh_account_id();
        let management = Account::assumed(&management_id);
        let org = management.organizations();
        management
            .block_on(
                org.create_organization()
                    .feature_set(aws_sdk_organizations::types::OrganizationFeatureSet::All)
                    .send(),
            )
            .unwrap();
        let roots = management.block_on(org.list_roots().send()).unwrap();
        let root = roots.roots()[0].id().unwrap().to_string();
        let ou = management
            .block_on(
                org.create_organizational_unit()
                    .parent_id(&root)
                    .name("rotate")
                    .send(),
            )
            .unwrap()
            .organizational_unit()
            .unwrap()
            .id()
            .unwrap()
            .to_string();
        let mut members = BTreeMap::new();
        for name in ["a", "b", "untagged", "excluded"] {
            let made = management
                .block_on(
                    org.create_account()
                        .email(format!("{name}-{management_id}@example.com"))
                        .account_name(name)
                        .send(),
                )
                .unwrap();
            let id = made
                .create_account_status()
                .unwrap()
                .account_id()
                .unwrap()
                .to_string();
            management
                .block_on(
                    org.move_account()
                        .account_id(&id)
                        .source_parent_id(&root)
                        .destination_parent_id(&ou)
                        .send(),
                )
                .unwrap();
            if name != "untagged" {
                let tag = aws_sdk_organizations::types::Tag::builder()
                    .key("rotation")
                    .value("enabled")
                    .build()
                    .unwrap();
                management
                    .block_on(org.tag_resource().resource_id(&id).tags(tag).send())
                    .unwrap();
            }
            let account = Account::assumed(&id);
            members.insert(name, (id, account));
        }
        let mut users = Vec::new();
        let mut seed = |account_id: &str, account: &Account| {
            for short in ["app", "ci"] {
                let user = if same_names {
                    account.user_named(short)
                } else {
                    account.user(short, "", &[])
                };
                let (key, _) = account.key(&user);
                account.ssm_json(&format!("/org-test/{user}"), &key);
                users.push((account_id.to_string(), user, key));
            }
        };
        seed(&management_id, &management);
        for (id, account) in members.values() {
            seed(id, account);
        }
        let dir = tempfile::tempdir().unwrap();
        let org = Org {
            management,
            management_id,
            ou,
            members,
            users,
            dir,
        };
        org.write_workflow("", "");
        org
    }

    /// Waits until the seeded keys are older than `max_key_age: 1s`.
    fn wait_until_due(&self) {
        std::thread::sleep(std::time::Duration::from_millis(1500));
    }

    fn id(&self, name: &str) -> &str {
        &self.members[name].0
    }

    fn account(&self, id: &str) -> &Account {
        if id == self.management_id {
            return &self.management;
        }
        &self.members.values().find(|(i, _)| i == id).unwrap().1
    }

    /// The workflow, with more targets and more top-level sections.
    fn write_workflow(&self, targets: &str, extra: &str) {
        let body = format!(
            r#"version: 1
name: org
select:
  path_prefix: /rekey-test/
  max_key_age: 1s
accounts:
  ids: ["{management}"]
  organization: {{ ous: [{ou}], tags: {{ rotation: enabled }} }}
  exclude: ["{excluded}"]
  role: RekeyRotation
targets:
  - id: app
    ssm_parameter: {{ name: "/org-test/${{user}}" }}
{targets}policy:
  soak: 0s
  concurrency: 3
  account_concurrency: 2
{extra}"#,
            management = self.management_id,
            ou = self.ou,
            excluded = self.id("excluded"),
        );
        std::fs::write(self.dir.path().join("workflow.yaml"), body).unwrap();
    }

    /// `rekey ARGS` as the management account, through `endpoint`.
    fn rekey(&self, endpoint: &str, args: &[&str]) -> crate::support::Run {
        self.rekey_with(endpoint, &[], args)
    }

    /// The same, with more environment variables.
    fn rekey_with(
        &self,
        endpoint: &str,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> crate::support::Run {
        let mut rekey = Rekey::new()
            .aws(endpoint)
            .current_dir(self.dir.path())
            .args(args);
        for (name, value) in env {
            rekey = rekey.env(name, value);
        }
        for (name, value) in self.management.env() {
            rekey = rekey.env(name, &value);
        }
        rekey.run()
    }

    fn role(&self, name: &str) -> String {
        format!("arn:aws:iam::{}:role/RekeyRotation", self.id(name))
    }

    /// Each user of `account_id`: rotated (one active key, new, which the
    /// parameter holds with the secret IAM issued) or untouched.
    fn assert_users(&self, account_id: &str, rotated: bool) {
        let account = self.account(account_id);
        let issued = account.issued_secrets();
        for (id, user, old) in self.users.iter().filter(|(id, ..)| id == account_id) {
            let keys = account.keys(user);
            let param = format!("/org-test/{user}");
            if !rotated {
                assert_eq!(keys, vec![(old.clone(), true)], "{id}/{user} untouched");
                assert_eq!(account.param_key(&param).as_deref(), Some(old.as_str()));
                continue;
            }
            assert_eq!(keys.len(), 1, "{id}/{user}: one key left: {keys:?}");
            let (new, active) = &keys[0];
            assert!(*active && new != old, "{id}/{user}: a new active key");
            assert_eq!(account.param_key(&param).as_ref(), Some(new));
            assert_eq!(
                account.param_secret(&param).as_ref(),
                issued.get(new),
                "{id}/{user}: the parameter holds the secret IAM issued"
            );
        }
    }

    /// Every output of the run is free of any issued secret and the canary.
    /// The journal is searched too.
    fn assert_no_secret(&self, outputs: &[&str]) {
        let issued = self.management.issued_secrets();
        let journal =
            std::fs::read_to_string(self.dir.path().join(".rekey/org/journal.jsonl")).unwrap();
        for output in outputs.iter().copied().chain([journal.as_str()]) {
            assert!(!output.contains(CANARY));
            for secret in issued.values() {
                assert!(!output.contains(secret.as_str()), "a secret was printed");
            }
        }
    }
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

#[test]
fn an_organization_is_planned_and_rotated_in_every_account_one_unreachable_account_aside() {
    let org = Org::new();
    org.wait_until_due();
    let log = org.dir.path().join("calls.jsonl");
    let proxy = fault_proxy(&log, &["--deny-role", &org.role("b")]);

    // Plan: exactly the selected accounts and users; `b` listed as not
    // reached, with the reason and the fix.
    // The plan is printed whole; the account not planned makes it exit 1.
    let planned = org.rekey(&proxy.endpoint, &["plan", "workflow.yaml", "--json"]);
    planned.exits(1);
    assert!(
        planned
            .stderr
            .contains(&format!("error: 1 account not planned ({})", org.id("b"))),
        "{}",
        planned.stderr
    );
    // Plan only reads: AssumeRole (to read as the role) and
    // GenerateCredentialReport (IAM's report refreshed) are the only calls
    // that are not List, Get or Describe.
    let actions: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| json(l)["action"].as_str().unwrap().to_string())
        .collect();
    for action in &actions {
        assert!(
            ["List", "Get", "Describe"]
                .iter()
                .any(|read| action.starts_with(read))
                || action == "AssumeRole"
                || action == "GenerateCredentialReport",
            "plan made a write call: {action}"
        );
    }
    for needed in ["AssumeRole", "ListAccountsForParent", "ListTagsForResource"] {
        assert!(actions.iter().any(|a| a == needed), "{needed}: {actions:?}");
    }
    let plan = json(&planned.stdout);
    let mut expected = vec![
        org.management_id.clone(),
        org.id("a").to_string(),
        org.id("b").to_string(),
    ];
    expected.sort();
    let accounts: Vec<&str> = plan["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["account"].as_str().unwrap())
        .collect();
    assert_eq!(accounts, expected, "selected accounts, sorted");
    let b = plan["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["account"] == org.id("b"))
        .unwrap();
    assert!(
        b["error"].as_str().unwrap().contains("AccessDenied")
            || b["error"].as_str().unwrap().contains("access denied"),
        "{b}"
    );
    assert!(b["fix"].as_str().unwrap().contains(&org.role("b")), "{b}");
    let mut users: Vec<(String, String)> = plan["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            assert_eq!(u["decision"], "rotate", "{u}");
            (
                u["account"].as_str().unwrap().to_string(),
                u["user"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    users.sort();
    let mut want: Vec<(String, String)> = org
        .users
        .iter()
        .filter(|(id, ..)| *id == org.management_id || id == org.id("a"))
        .map(|(id, user, _)| (id.clone(), user.clone()))
        .collect();
    want.sort();
    assert_eq!(users, want);
    let text = org.rekey(&proxy.endpoint, &["plan", "workflow.yaml"]);
    text.exits(1);
    assert!(
        text.stdout.contains(&format!(
            "! Account {} through {}",
            org.id("b"),
            org.role("b")
        )),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("in 2 of 3 accounts; 1 not planned"),
        "{}",
        text.stdout
    );

    // Apply: the reachable accounts converge; `b` is an error (exit 1),
    // reported after the others finish; nothing in `b` changed.
    std::fs::write(&log, "").unwrap();
    let applied = org.rekey(
        &proxy.endpoint,
        &["apply", "workflow.yaml", "--auto-approve"],
    );
    applied.exits(1);
    assert!(
        applied
            .stdout
            .contains(&format!("account {}: NOT REACHED", org.id("b"))),
        "{}",
        applied.stdout
    );
    org.assert_users(&org.management_id, true);
    org.assert_users(org.id("a"), true);
    org.assert_users(org.id("b"), false);
    org.assert_users(org.id("untagged"), false);
    org.assert_users(org.id("excluded"), false);
    // The untagged and excluded accounts were never even reached.
    let roles: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter_map(|l| json(l)["role"].as_str().map(str::to_string))
        .collect();
    assert!(roles.contains(&org.role("a")), "{roles:?}");
    assert!(!roles.contains(&org.role("untagged")), "{roles:?}");
    assert!(!roles.contains(&org.role("excluded")), "{roles:?}");

    // Once the role can be assumed, the next apply finishes `b` alone.
    let again = org.rekey(emulator(), &["apply", "workflow.yaml", "--auto-approve"]);
    again.exits(0);
    org.assert_users(org.id("b"), true);
    org.assert_users(org.id("a"), true);
    // Nothing left to do, but an account not reached is still an error.
    let idle = org.rekey(
        &proxy.endpoint,
        &[
            "apply",
            "workflow.yaml",
            "--auto-approve",
            "--as-of",
            "2020-01-01",
        ],
    );
    idle.exits(1);
    assert!(idle.stdout.contains("Nothing to do."), "{}", idle.stdout);
    // A saved plan cannot be checked against an account out of reach: said
    // as such, not called stale.
    org.rekey(
        emulator(),
        &["plan", "workflow.yaml", "--out", "saved.json"],
    )
    .exits(0);
    let unchecked = org.rekey(&proxy.endpoint, &["apply", "saved.json"]);
    unchecked.exits(1);
    assert!(
        unchecked.stderr.contains(&format!(
            "the saved plan cannot be checked: account {} cannot be reached",
            org.id("b")
        )),
        "{}",
        unchecked.stderr
    );
    let status = org.rekey(emulator(), &["status", "workflow.yaml"]);
    status.exits(0);
    assert!(
        status.stdout.contains(&format!("account {}:", org.id("b"))),
        "{}",
        status.stdout
    );
    org.assert_no_secret(&[
        &planned.stdout,
        &text.stdout,
        &applied.stdout,
        &applied.stderr,
        &again.stdout,
        &again.stderr,
        &status.stdout,
    ]);
}

#[test]
fn account_and_user_narrow_a_fanned_out_run() {
    let org = Org::new();
    org.wait_until_due();
    let a = org.id("a").to_string();
    let only_a = org.rekey(
        emulator(),
        &["plan", "workflow.yaml", "--json", "--account", &a],
    );
    only_a.exits(0);
    let plan = json(&only_a.stdout);
    assert_eq!(plan["accounts"].as_array().unwrap().len(), 1);
    assert!(
        plan["users"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["account"] == a.as_str())
    );
    // An account the workflow does not rotate in is refused by name.
    let untagged = org.id("untagged").to_string();
    let refused = org.rekey(
        emulator(),
        &["plan", "workflow.yaml", "--account", &untagged],
    );
    refused.exits(1);
    assert!(
        refused.stderr.contains(&format!(
            "--account {untagged}: the workflow does not rotate in"
        )),
        "{}",
        refused.stderr
    );
    // ACCOUNT/NAME: one user of one account; its namesakes elsewhere wait,
    // and no other account is even reached.
    let (_, user, _) = org.users.iter().find(|(id, ..)| *id == a).unwrap().clone();
    let one = format!("{a}/{user}");
    let outside = org.rekey(
        emulator(),
        &[
            "plan",
            "workflow.yaml",
            "--account",
            &org.management_id,
            "--user",
            &one,
        ],
    );
    outside.exits(1);
    assert!(
        outside.stderr.contains(&format!(
            "--user {one}: its account is not one of those --account names"
        )),
        "{}",
        outside.stderr
    );
    let applied = org.rekey(
        emulator(),
        &["apply", "workflow.yaml", "--auto-approve", "--user", &one],
    );
    applied.exits(0);
    assert!(
        !applied
            .stdout
            .contains(&format!("Account {}", org.management_id)),
        "{}",
        applied.stdout
    );
    let bad = org.rekey(emulator(), &["abort", "workflow.yaml", "--account", "abc"]);
    bad.exits(1);
    assert!(
        bad.stderr.contains("not an AWS account id"),
        "{}",
        bad.stderr
    );
    let account = org.account(&a);
    assert_eq!(account.keys(&user).len(), 1);
    assert_ne!(
        account.keys(&user)[0].0,
        org.users
            .iter()
            .find(|(i, u, _)| *i == a && *u == user)
            .unwrap()
            .2
    );
    for (id, other, old) in &org.users {
        if !(id == &a && other == &user) {
            assert_eq!(org.account(id).keys(other), vec![(old.clone(), true)]);
        }
    }
    // A plan saved with --account is applied as it was narrowed.
    let b = org.id("b").to_string();
    org.rekey(
        emulator(),
        &["plan", "workflow.yaml", "--account", &b, "--out", "b.json"],
    )
    .exits(0);
    let applied = org.rekey(emulator(), &["apply", "b.json"]);
    applied.exits(0);
    org.assert_users(&b, true);
    org.assert_users(&org.management_id, false);
}

fn validate(dir: &std::path::Path) -> crate::support::Run {
    let run = Rekey::new()
        .current_dir(dir)
        .args(["validate", "workflow.yaml"])
        .run();
    run.exits(1);
    run
}

#[test]
fn accounts_are_checked_with_their_lines() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("workflow.yaml"),
        r#"version: 1
select:
  users: [app]
accounts:
  ids: ["12345", "111111111111"]
  organization: { ous: [prod] }
  role: "arn:aws:iam::111111111111:role/Fixed"
targets:
  - id: app
    ssm_parameter: { name: "/app/${user}" }
policy:
  account_concurrency: 0
"#,
    )
    .unwrap();
    let run = validate(dir.path());
    for expected in [
        "workflow.yaml:5:9: error: `12345` is not an AWS account id",
        "workflow.yaml:6:25: error: `prod` is not an OU id",
        "workflow.yaml:7:9: error: `accounts.role` is an ARN without `${account}`",
        "workflow.yaml:12:24: error: account_concurrency 0 is out of range",
    ] {
        assert!(run.stderr.contains(expected), "{expected}\n{}", run.stderr);
    }
    std::fs::write(
        dir.path().join("workflow.yaml"),
        r#"version: 1
select:
  users: [app]
accounts:
  ids: ["111111111111"]
  role: "Rotation-${user}"
targets:
  - id: app
    ssm_parameter: { name: "/app/${user}" }
"#,
    )
    .unwrap();
    let run = validate(dir.path());
    assert!(
        run.stderr
            .contains("workflow.yaml:6:19: error: `${user}` cannot be used here"),
        "{}",
        run.stderr
    );
    // An empty OU list would silently mean the whole Organization; roles
    // that cannot be assumed are named.
    for (role, ous) in [
        ("arn:aws:iam::${account}:user/bob", "[]"),
        ("Rekey Rotation", "[ou-ABCD-12345678]"),
        ("RekeyRotation/../x", "[r-abcd]"),
    ] {
        std::fs::write(
            dir.path().join("workflow.yaml"),
            format!(
                "version: 1\nselect:\n  users: [app]\naccounts:\n  organization: {{ ous: {ous} }}\n  role: \"{role}\"\ntargets:\n  - id: app\n    ssm_parameter: {{ name: \"/app/${{user}}\" }}\n"
            ),
        )
        .unwrap();
        let run = validate(dir.path());
        assert!(
            run.stderr
                .contains(&format!("`{role}` is neither a role name nor a role ARN")),
            "{role}: {}",
            run.stderr
        );
        if ous == "[]" {
            assert!(run.stderr.contains("`ous` lists no OU"), "{}", run.stderr);
        }
        if ous.contains("ABCD") {
            assert!(run.stderr.contains("is not an OU id"), "{}", run.stderr);
        }
    }
    // A target's `account:`: only kinds that live in an account, and only
    // with a role to reach it.
    std::fs::write(
        dir.path().join("workflow.yaml"),
        r#"version: 1
select:
  users: [app]
targets:
  - id: app
    ssm_parameter: { name: "/app/${user}" }
    account: "444444444444"
  - id: file
    credentials_file: { path: ./credentials }
    account: "444444444444"
"#,
    )
    .unwrap();
    let run = validate(dir.path());
    for expected in [
        "workflow.yaml:7:5: error: a target in another account needs a role to reach it there",
        "workflow.yaml:10:5: error: a `credentials_file` target does not live in an AWS account",
    ] {
        assert!(run.stderr.contains(expected), "{expected}\n{}", run.stderr);
    }
}

#[test]
fn a_target_in_a_central_account_and_commands_as_the_role_of_each_account() {
    let org = Org::new();
    org.wait_until_due();
    // `untagged` is not rotated in: here it is the central secrets account.
    let central = org.id("untagged").to_string();
    let who = org.dir.path().join("who.txt");
    org.write_workflow(
        &format!(
            r#"  - id: central
    ssm_parameter: {{ name: "/central/${{account}}/${{user}}" }}
    account: "{central}"
"#
        ),
        &format!(
            r#"hooks:
  verify:
    - id: whoami
      exec:
        command: ["sh", "-c", "echo \"$REKEY_USER $AWS_ACCESS_KEY_ID $AWS_SECRET_ACCESS_KEY $AWS_SESSION_TOKEN\" >> {who}"]
        credentials: operator
"#,
            who = who.display()
        ),
    );
    let plan = org.rekey(emulator(), &["plan", "workflow.yaml"]);
    plan.exits(0);
    assert!(
        plan.stdout
            .contains(&format!("in account {central}: will be created")),
        "{}",
        plan.stdout
    );
    // A rotation in progress whose targets name `${account}` is bound for
    // its own account: nothing changed since it began.
    let a = org.id("a").to_string();
    let (_, first, _) = org.users.iter().find(|(id, ..)| *id == a).unwrap().clone();
    org.rekey(
        emulator(),
        &[
            "apply",
            "workflow.yaml",
            "--auto-approve",
            "--user",
            &format!("{a}/{first}"),
            "--until",
            "distribute",
        ],
    )
    .exits(0);
    let midway = org.rekey(emulator(), &["plan", "workflow.yaml"]);
    midway.exits(0);
    assert!(midway.stdout.contains("in progress"), "{}", midway.stdout);
    assert!(
        !midway
            .stdout
            .contains("The workflow changed since it began"),
        "{}",
        midway.stdout
    );
    let applied = org.rekey(emulator(), &["apply", "workflow.yaml", "--auto-approve"]);
    applied.exits(0);
    let store = org.account(&central);
    let issued = store.issued_secrets();
    for (id, user, _) in org
        .users
        .iter()
        .filter(|(id, ..)| *id == org.management_id || id == org.id("a") || id == org.id("b"))
    {
        let name = format!("/central/{id}/{user}");
        let new = org.account(id).keys(user)[0].0.clone();
        assert_eq!(store.param_key(&name).as_ref(), Some(&new), "{name}");
        assert_eq!(
            store.param_secret(&name).as_ref(),
            issued.get(&new),
            "{name}"
        );
    }
    // Each account's hook ran with that account's role: its credentials
    // act as that account.
    let lines = std::fs::read_to_string(&who).unwrap();
    for member in ["a", "b"] {
        let (id, account) = &org.members[member];
        let user = &org.users.iter().find(|(i, ..)| i == id).unwrap().1;
        let line = lines
            .lines()
            .find(|l| l.starts_with(&format!("{user} ")))
            .unwrap_or_else(|| panic!("{user} in {lines}"));
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields.len(), 4, "{line}");
        assert_eq!(Account::identity_of(fields[1], fields[2], fields[3]), *id);
        let _ = account;
    }
}

#[test]
fn the_same_user_name_in_every_account_survives_a_kill_and_a_saved_plan() {
    let org = Org::seeded(true);
    org.wait_until_due();
    let saved = org.dir.path().join("plan.json");
    org.rekey(
        emulator(),
        &["plan", "workflow.yaml", "--out", saved.to_str().unwrap()],
    )
    .exits(0);
    // Killed in the middle of distributing: rotations in three accounts,
    // all of users named `app` and `ci`, stop wherever they were.
    let mut killed = std::process::Command::new(env!("CARGO_BIN_EXE_rekey"));
    killed
        .args(["apply", "plan.json"])
        .current_dir(org.dir.path())
        .env("NO_COLOR", "1")
        .env("REKEY_CLAIMS_DIR", crate::support::claims_dir())
        .env("REKEY_CRASH_AT", "distribute:app")
        .env("AWS_ENDPOINT_URL", emulator())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent");
    for (name, value) in org.management.env() {
        killed.env(name, value);
    }
    let killed = killed.output().unwrap();
    assert_eq!(
        killed.status.code(),
        None,
        "{}",
        String::from_utf8_lossy(&killed.stdout)
    );
    let status = org.rekey(emulator(), &["status", "workflow.yaml"]);
    status.exits(0);
    assert!(status.stdout.contains("account "), "{}", status.stdout);
    // The saved plan is stale now (keys were created): refused.
    let stale = org.rekey(emulator(), &["apply", "plan.json"]);
    stale.exits(1);
    // The next apply finishes every rotation, each in its own account.
    let resumed = org.rekey(emulator(), &["apply", "workflow.yaml", "--auto-approve"]);
    resumed.exits(0);
    for id in [&org.management_id, org.id("a"), org.id("b")] {
        org.assert_users(id, true);
        assert!(
            resumed.stdout.contains(&format!("account {id}:")),
            "{}",
            resumed.stdout
        );
    }
    org.assert_users(org.id("untagged"), false);
    org.assert_users(org.id("excluded"), false);
    // Nothing staged is left, and no claim.
    let staged = org.dir.path().join(".rekey/org/staging");
    let left: Vec<_> = std::fs::read_dir(&staged)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    // Nothing is left in progress (new keys are due again: max_key_age 1s).
    let again = org.rekey(emulator(), &["plan", "workflow.yaml", "--json"]);
    again.exits(0);
    assert_eq!(json(&again.stdout)["summary"]["in_progress"], 0);
    org.assert_no_secret(&[
        &String::from_utf8_lossy(&killed.stdout),
        &resumed.stdout,
        &resumed.stderr,
        &std::fs::read_to_string(&saved).unwrap(),
    ]);
}

#[test]
fn a_rotation_in_an_account_no_longer_selected_is_finished_and_nothing_new_begins_there() {
    let org = Org::new();
    org.wait_until_due();
    let a = org.id("a").to_string();
    let (_, app, _) = org.users.iter().find(|(id, ..)| *id == a).unwrap().clone();
    let one = format!("{a}/{app}");
    org.rekey(
        emulator(),
        &[
            "apply",
            "workflow.yaml",
            "--auto-approve",
            "--user",
            &one,
            "--until",
            "distribute",
        ],
    )
    .exits(0);
    // The workflow is edited: account `a` is excluded now.
    let path = org.dir.path().join("workflow.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let excluded = org.id("excluded");
    std::fs::write(
        &path,
        text.replace(
            &format!("exclude: [\"{excluded}\"]"),
            &format!("exclude: [\"{excluded}\", \"{a}\"]"),
        ),
    )
    .unwrap();
    let plan = org.rekey(emulator(), &["plan", "workflow.yaml"]);
    plan.exits(0);
    assert!(
        plan.stdout.contains(&format!(
            "Account {a} through arn:aws:iam::{a}:role/RekeyRotation (no longer selected: only its rotations in progress go on)"
        )),
        "{}",
        plan.stdout
    );
    // Narrowed to another account, the plan leaves `a` out.
    let b = org.id("b").to_string();
    let narrowed = org.rekey(emulator(), &["plan", "workflow.yaml", "--account", &b]);
    narrowed.exits(0);
    assert!(!narrowed.stdout.contains(&a), "{}", narrowed.stdout);
    let applied = org.rekey(emulator(), &["apply", "workflow.yaml", "--auto-approve"]);
    applied.exits(0);
    let account = org.account(&a);
    let issued = account.issued_secrets();
    for (id, user, old) in org.users.iter().filter(|(id, ..)| *id == a) {
        let keys = account.keys(user);
        if *user == app {
            assert_eq!(keys.len(), 1, "{id}/{user}: {keys:?}");
            assert_ne!(&keys[0].0, old);
            let param = format!("/org-test/{user}");
            assert_eq!(
                account.param_secret(&param).as_ref(),
                issued.get(&keys[0].0)
            );
        } else {
            assert_eq!(keys, vec![(old.clone(), true)], "{id}/{user}: nothing new");
        }
    }
    org.assert_users(&org.management_id, true);
    org.assert_users(org.id("b"), true);
}

#[test]
fn one_file_written_for_namesakes_of_two_accounts_is_refused() {
    let org = Org::seeded(true);
    org.write_workflow(
        "  - id: profile\n    credentials_file: { path: ./credentials, profile: \"${user}\" }\n",
        "",
    );
    let plan = org.rekey(
        emulator(),
        &["plan", "workflow.yaml", "--as-of", "2030-01-01"],
    );
    plan.exits(1);
    assert!(
        plan.stderr.contains("would both write") && plan.stderr.contains("${account}"),
        "{}",
        plan.stderr
    );
    // Narrowed to one account, the collision is out of sight: a profile
    // that already holds another account's namesake's key blocks the user.
    let a = org.id("a").to_string();
    let b = org.id("b").to_string();
    let apply_in = |account: &str| {
        org.rekey(
            emulator(),
            &[
                "apply",
                "workflow.yaml",
                "--auto-approve",
                "--as-of",
                "2030-01-01",
                "--account",
                account,
            ],
        )
    };
    apply_in(&a).exits(0);
    org.assert_users(&a, true);
    let profiles = std::fs::read_to_string(org.dir.path().join("credentials")).unwrap();
    let second = apply_in(&b);
    // Blocked by the file's other key: left due, so 5.
    second.exits(5);
    assert!(
        second.stdout.contains("which is not a key of this user"),
        "{}",
        second.stdout
    );
    org.assert_users(&b, false);
    assert_eq!(
        std::fs::read_to_string(org.dir.path().join("credentials")).unwrap(),
        profiles,
        "account a's keys stay in the file"
    );
    // --account with a bad id is named as such.
    let bad = org.rekey(emulator(), &["plan", "workflow.yaml", "--account", "abc"]);
    bad.exits(1);
    assert!(
        bad.stderr.contains("--account abc: not an AWS account id"),
        "{}",
        bad.stderr
    );
}

#[test]
fn a_central_target_holding_another_users_key_blocks_even_a_narrowed_run() {
    // Account `a`'s own parameters `/org-test/<user>` are also what the
    // central target names for every account's namesake in `a`.
    let org = Org::seeded(true);
    let a = org.id("a").to_string();
    org.write_workflow(
        &format!(
            "  - id: central\n    account: \"{a}\"\n    ssm_parameter: {{ name: \"/org-test/${{user}}\" }}\n"
        ),
        "",
    );
    let whole = org.rekey(
        emulator(),
        &["plan", "workflow.yaml", "--as-of", "2030-01-01"],
    );
    whole.exits(1);
    assert!(
        whole.stderr.contains("would both write"),
        "{}",
        whole.stderr
    );
    // Narrowed to the management account, the collision with `a`'s own
    // users is out of sight: the parameter holding a key of another user
    // blocks the rotation instead, and nothing in `a` is written.
    let only = org.rekey(
        emulator(),
        &[
            "apply",
            "workflow.yaml",
            "--auto-approve",
            "--as-of",
            "2030-01-01",
            "--account",
            &org.management_id,
        ],
    );
    // Blocked: left due, so 5.
    only.exits(5);
    assert!(
        only.stdout.contains("which is not a key of this user"),
        "{}",
        only.stdout
    );
    org.assert_users(&a, false);
    org.assert_users(&org.management_id, false);
}

#[test]
fn a_roles_credentials_are_asked_for_again_before_they_expire() {
    let org = Org::new();
    org.write_workflow(
        "",
        "hooks:\n  verify:\n    - id: slow\n      exec: { command: [sleep, \"9\"], timeout: 30s }\n",
    );
    org.wait_until_due();
    let a = org.id("a").to_string();
    let (_, user, _) = org.users.iter().find(|(id, ..)| *id == a).unwrap().clone();
    let log = org.dir.path().join("calls.jsonl");
    let proxy = crate::emulator::recording_proxy(&log, 0);
    // Sessions of 12 s, asked for again 3 s before they end: the hook's
    // 9 s outlast the first one.
    let one = format!("{a}/{user}");
    org.rekey_with(
        &proxy.endpoint,
        &[("REKEY_ROLE_SESSION", "12s")],
        &[
            "apply",
            "workflow.yaml",
            "--auto-approve",
            "--account",
            &a,
            "--user",
            &one,
        ],
    )
    .exits(0);
    let assumed = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter(|l| json(l)["role"] == org.role("a").as_str())
        .count();
    assert!(assumed >= 2, "the role was assumed {assumed} time(s)");
    let account = org.account(&a);
    let keys = account.keys(&user);
    assert_eq!(keys.len(), 1);
    assert_eq!(
        account.param_secret(&format!("/org-test/{user}")).as_ref(),
        account.issued_secrets().get(&keys[0].0)
    );
}
