//! `rekey report` (issue 20): every key of every account the workflows
//! reach, judged by IAM.3, IAM.22 and CIS's one-active-key control, with
//! coverage, exemptions and the journals' change records; in five formats,
//! none of which holds a secret; the HTML checked in a real browser.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::account::{Account, CANARY};
use crate::accounts::fresh_account_id;
use crate::emulator::emulator;
use crate::support::{Rekey, Setup, seed};

/// Three fresh accounts, each reached by assuming `RekeyTests`, seeded
/// with keys 10, 50, 89 and 120 days old.
struct Fleet {
    dir: tempfile::TempDir,
    accounts: Vec<(String, Account)>,
    /// (account, user, key id)
    keys: Vec<(String, String, String)>,
    /// Every secret IAM issued for the seeded keys.
    secrets: Vec<String>,
}

impl Fleet {
    fn new() -> Self {
        let accounts: Vec<(String, Account)> = (0..3)
            .map(|_| {
                let id = fresh_account_id();
                let account = Account::assumed(&id);
                (id, account)
            })
            .collect();
        let mut fleet = Fleet {
            dir: tempfile::tempdir().unwrap(),
            accounts: Vec::new(),
            keys: Vec::new(),
            secrets: Vec::new(),
        };
        for (index, (id, account)) in accounts.iter().enumerate() {
            // A user with `keys` active keys, each used `used` days ago.
            let mut add = |short: &str, days: &str, used: Option<i64>, keys: usize| {
                let user = account.user(short, days, &[]);
                let mut last = String::new();
                for _ in 0..keys {
                    let (key, secret) = account.key(&user);
                    fleet.secrets.push(secret);
                    fleet.keys.push((id.clone(), user.clone(), key.clone()));
                    if let Some(used) = used {
                        account.used(&key, used, "s3", "eu-west-1");
                    }
                    last = key;
                }
                (user, last)
            };
            match index {
                0 => {
                    add("cov-fresh", "d10/", Some(1), 1);
                    add("cov-idle", "d50/", None, 1);
                    add("cov-two", "d89/", Some(2), 2);
                    add("old", "d120/", Some(2), 1);
                }
                1 => {
                    add("cov-exempt", "d120/", Some(1), 1);
                    add("cov-lapsed", "d120/", Some(1), 1);
                }
                _ => {
                    add("cov-ok", "d10/", Some(1), 1);
                    let (user, key) = add("cov-retired", "d120/", None, 1);
                    account.deactivate(&user, &key);
                    account.ssm_put(&format!("/report/{user}"), &key, CANARY);
                }
            }
            for (subpath, days) in [("d10/", 10), ("d50/", 50), ("d89/", 89), ("d120/", 120)] {
                account.age_keys_under(subpath, days);
            }
        }
        fleet.accounts = accounts;
        let ids: Vec<String> = fleet
            .accounts
            .iter()
            .map(|(id, _)| format!("\"{id}\""))
            .collect();
        std::fs::write(
            fleet.dir.path().join("workflow.yaml"),
            format!(
                "version: 1\nname: report-org\nselect:\n  users: [\"cov-*\"]\n  max_key_age: 80d\naccounts:\n  ids: [{}]\n  role: RekeyTests\ntargets:\n  - id: param\n    ssm_parameter: {{ name: \"/report/${{user}}\" }}\n",
                ids.join(", ")
            ),
        )
        .unwrap();
        let lapsed_account = &fleet.accounts[1].0;
        std::fs::write(
            fleet.dir.path().join("exemptions.yaml"),
            format!(
                "exemptions:\n  - user: \"cov-exempt-*\"\n    account: \"{lapsed_account}\"\n    reason: appliance (CHG-7)\n    expires: 2999-01-01\n  - user: \"cov-lapsed-*\"\n    reason: was waiting for a vendor\n    expires: 2020-06-30\n"
            ),
        )
        .unwrap();
        fleet
    }

    fn report(&self, format: &str) -> crate::support::Run {
        // An hour on: each seeded key is exactly its days old.
        let as_of = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
        let as_of = as_of
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        Rekey::new()
            .aws(emulator())
            .current_dir(self.dir.path())
            .args([
                "report",
                "workflow.yaml",
                "--exemptions",
                "exemptions.yaml",
                "--as-of",
                &as_of,
                "--format",
                format,
            ])
            .run()
    }

    fn short(&self, user: &str) -> &'static str {
        [
            "cov-fresh",
            "cov-idle",
            "cov-two",
            "old",
            "cov-exempt",
            "cov-lapsed",
            "cov-ok",
            "cov-retired",
        ]
        .into_iter()
        .find(|s| user.starts_with(&format!("{s}-")))
        .unwrap_or("?")
    }
}

fn results(key: &Value) -> BTreeMap<String, String> {
    key["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["control"].as_str().unwrap().to_string(),
                r["result"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn every_key_of_three_accounts_is_judged_by_each_control() {
    let fleet = Fleet::new();
    let run = fleet.report("json");
    run.exits(5);
    let doc: Value = serde_json::from_str(&run.stdout).unwrap();
    let accounts = doc["accounts"].as_array().unwrap();
    let mut ids: Vec<&str> = fleet.accounts.iter().map(|(id, _)| id.as_str()).collect();
    ids.sort();
    assert_eq!(
        accounts
            .iter()
            .map(|a| a["account"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ids
    );
    let mut seen = 0;
    for account in accounts {
        for key in account["keys"].as_array().unwrap() {
            seen += 1;
            let user = key["user"].as_str().unwrap();
            let got = results(key);
            let (iam3, iam22, one) = (&got["IAM.3"], &got["IAM.22"], &got["CIS-one-active-key"]);
            let failing = key["failing"].as_bool().unwrap();
            match fleet.short(user) {
                "cov-fresh" | "cov-ok" => {
                    assert_eq!(
                        (iam3, iam22, one, failing),
                        (&"PASSED".into(), &"PASSED".into(), &"PASSED".into(), false),
                        "{key}"
                    );
                    assert_eq!(key["last_used"]["service"], "s3", "{key}");
                    assert_eq!(key["last_used"]["region"], "eu-west-1", "{key}");
                    assert_eq!(key["workflow"], "report-org");
                    assert_eq!(key["age_days"], 10);
                }
                "cov-idle" => {
                    assert_eq!(
                        (iam3.as_str(), iam22.as_str(), failing),
                        ("PASSED", "FAILED", true),
                        "{key}"
                    );
                    assert!(key["last_used"].is_null(), "{key}");
                    assert_eq!(key["age_days"], 50);
                }
                "cov-two" => {
                    assert_eq!(
                        (iam3.as_str(), iam22.as_str(), one.as_str()),
                        ("PASSED", "PASSED", "FAILED"),
                        "{key}"
                    );
                    assert_eq!(key["age_days"], 89);
                }
                "old" => {
                    assert_eq!((iam3.as_str(), failing), ("FAILED", true), "{key}");
                    assert!(key["workflow"].is_null(), "not covered: {key}");
                }
                "cov-exempt" => {
                    assert_eq!((iam3.as_str(), failing), ("FAILED", false), "{key}");
                    assert!(
                        key["exemption"]
                            .as_str()
                            .unwrap()
                            .starts_with("exempt until 2999-01-01: appliance (CHG-7)"),
                        "{key}"
                    );
                }
                "cov-lapsed" => {
                    assert!(failing, "{key}");
                    assert!(
                        key["exemption"]
                            .as_str()
                            .unwrap()
                            .contains("its last day was 2020-06-30"),
                        "{key}"
                    );
                }
                "cov-retired" => {
                    assert_eq!(key["status"], "Inactive");
                    assert_eq!(
                        (iam3.as_str(), iam22.as_str(), failing),
                        ("PASSED", "PASSED", false),
                        "{key}"
                    );
                }
                other => panic!("an unexpected user {other}: {key}"),
            }
            let cis = key["results"][0]["cis"].as_array().unwrap();
            assert!(cis.iter().any(|c| c == "1.14 (v1.4-v3.0)"), "{cis:?}");
        }
    }
    assert_eq!(seen, fleet.keys.len(), "every key, selected or not");
    let failing: Vec<u64> = accounts
        .iter()
        .map(|a| a["summary"]["failing"].as_u64().unwrap())
        .collect();
    let first = ids
        .iter()
        .position(|id| *id == fleet.accounts[0].0)
        .unwrap();
    assert_eq!(failing[first], 4, "idle, two keys of one user, old");
    // Failing keys first.
    for account in accounts {
        let flags: Vec<bool> = account["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["failing"].as_bool().unwrap())
            .collect();
        let mut sorted = flags.clone();
        sorted.sort_by_key(|f| !f);
        assert_eq!(flags, sorted);
    }
}

#[test]
fn the_csv_has_a_row_per_key_and_control_and_no_format_holds_a_secret() {
    let fleet = Fleet::new();
    let csv = fleet.report("csv");
    csv.exits(5);
    let rows: Vec<&str> = csv.stdout.lines().collect();
    assert!(
        rows[0].starts_with("account,user,access_key_id,"),
        "{}",
        rows[0]
    );
    assert_eq!(rows.len() - 1, fleet.keys.len() * 3, "{}", csv.stdout);
    for (account, user, key) in &fleet.keys {
        for control in ["IAM.3", "IAM.22", "CIS-one-active-key"] {
            assert_eq!(
                rows.iter()
                    .filter(|r| r.starts_with(&format!("{account},{user},{key},"))
                        && r.contains(&format!(",{control},")))
                    .count(),
                1,
                "{user} {key} {control}"
            );
        }
    }
    let mut outputs = vec![csv.stdout.clone(), csv.stderr.clone()];
    for format in ["text", "json", "markdown", "html"] {
        let run = fleet.report(format);
        run.exits(5);
        for (_, _, key) in &fleet.keys {
            assert!(
                run.stdout.contains(key.as_str()),
                "{format} names {key} whole"
            );
        }
        outputs.push(run.stdout);
        outputs.push(run.stderr);
    }
    for output in &outputs {
        assert!(!output.contains(CANARY), "the planted secret leaked");
        for secret in &fleet.secrets {
            assert!(!output.contains(secret.as_str()), "an issued secret leaked");
        }
    }
    let html = &outputs[outputs.len() - 2];
    assert!(
        !html.contains("http://") && !html.contains("https://") && !html.contains("<script"),
        "self-contained"
    );
}

#[test]
fn the_history_shows_a_rotation_with_its_keys_hosts_and_ci_job() {
    let account = Account::new();
    let users = seed(&account, "", 1);
    let setup = Setup::new(&account, "", "policy:\n  soak: 0s\n");
    account.age_keys();
    setup
        .rekey_at(
            emulator(),
            &[("REKEY_JOB", "nightly #41")],
            &["apply", "workflow.yaml", "--auto-approve"],
        )
        .exits(0);
    let new_key = account.keys(&users[0].0)[0].0.clone();
    assert_ne!(new_key, users[0].1);
    let run = setup.rekey(&["report", "workflow.yaml", "--format", "json"]);
    let doc: Value = serde_json::from_str(&run.stdout).unwrap();
    let history = doc["accounts"][0]["history"].as_array().unwrap();
    let entry = history
        .iter()
        .find(|h| h["user"] == users[0].0.as_str())
        .unwrap_or_else(|| panic!("{}", run.stdout));
    assert_eq!(entry["old_key"], users[0].1.as_str());
    assert_eq!(entry["new_key"], new_key.as_str());
    assert_eq!(entry["outcome"], "finished");
    assert_eq!(entry["workflow"], "test");
    for when in ["created", "disabled", "deleted"] {
        assert!(
            entry[when].as_str().is_some_and(|t| t.ends_with('Z')),
            "{when}: {entry}"
        );
    }
    let targets: Vec<&str> = entry["distributed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["what"].as_str().unwrap())
        .collect();
    assert_eq!(
        targets,
        ["distribute:param", "distribute:profile", "distribute:push"],
        "{entry}"
    );
    assert_eq!(entry["runners"][0]["job"], "nightly #41", "{entry}");
    assert!(
        entry["runners"][0]["host"]
            .as_str()
            .is_some_and(|h| !h.is_empty())
    );
    let text = setup.rekey(&["report", "workflow.yaml"]);
    assert!(
        text.stdout.contains(&format!("created {new_key}")),
        "{}",
        text.stdout
    );
    let secret = setup.profile_secret(&users[0].0).unwrap();
    assert!(!run.stdout.contains(&secret) && !text.stdout.contains(&secret));
}

#[test]
fn a_report_says_what_it_could_not_judge_and_writes_where_it_is_told() {
    let account = Account::new();
    seed(&account, "", 1);
    let setup = Setup::new(&account, "", "");
    std::fs::write(
        setup.path().join("exemptions.yaml"),
        "exemptions:\n  - user: nobody-*\n    reason: \"<b>gone</b> | since 2020\"\n    expires: 2020-06-30\n",
    )
    .unwrap();
    let report = |args: &[&str]| {
        let mut all = vec!["report", "workflow.yaml", "--exemptions", "exemptions.yaml"];
        all.extend(args);
        setup.rekey(&all)
    };
    // An expired exemption fails the report though it matches no key.
    let json = report(&["--format", "json"]);
    json.exits(5);
    let doc: Value = serde_json::from_str(&json.stdout).unwrap();
    assert!(
        doc["expired_exemptions"][0]
            .as_str()
            .unwrap()
            .contains("`nobody-*`"),
        "{doc}"
    );
    let markdown = report(&["--format", "markdown"]);
    assert!(
        markdown
            .stdout
            .contains("&lt;b&gt;gone&lt;/b&gt; \\| since 2020"),
        "{}",
        markdown.stdout
    );
    // Keys created after --as-of did not exist then.
    let before = report(&["--format", "json", "--as-of", "2020-01-01"]);
    let doc: Value = serde_json::from_str(&before.stdout).unwrap();
    let account_doc = doc["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["summary"]["created_later"].as_u64() > Some(0));
    assert!(
        account_doc.is_some_and(|a| a["keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["created"].as_str() < Some("2020-01-02"))),
        "{doc}"
    );
    // --out: `-` is stdout, a FIFO is written into, a missing folder is an error.
    let dash = report(&["--format", "csv", "--out", "-"]);
    assert!(dash.stdout.starts_with("account,user,"), "{}", dash.stdout);
    let missing = report(&["--out", "no/such/folder/r.txt"]);
    missing.exits(1);
    assert!(
        missing.stderr.contains("no/such/folder does not exist"),
        "{}",
        missing.stderr
    );
    let fifo = setup.path().join("pipe");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
    };
    report(&["--format", "csv", "--out", "pipe"]).exits(5);
    assert!(reader.join().unwrap().starts_with("account,user,"));
    use std::os::unix::fs::FileTypeExt;
    assert!(
        std::fs::metadata(&fifo).unwrap().file_type().is_fifo(),
        "still a FIFO"
    );
    // A link is followed: the file it points at is replaced, and keeps its mode.
    use std::os::unix::fs::PermissionsExt;
    let real = setup.path().join("real.csv");
    std::fs::write(&real, "old").unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink(&real, setup.path().join("link.csv")).unwrap();
    report(&["--format", "csv", "--out", "link.csv"]).exits(5);
    assert!(
        std::fs::read_to_string(&real)
            .unwrap()
            .starts_with("account,user,")
    );
    assert!(
        std::fs::symlink_metadata(setup.path().join("link.csv"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        std::fs::metadata(&real).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // `plan --out -` is the plan document alone on stdout.
    let plan = setup.rekey(&["plan", "workflow.yaml", "--out", "-"]);
    plan.exits(0);
    let _: Value =
        serde_json::from_str(&plan.stdout).unwrap_or_else(|e| panic!("{e}: {}", plan.stdout));
    // A journal that cannot be read is said in the report itself.
    std::fs::create_dir_all(setup.state()).unwrap();
    std::fs::write(
        setup.state().join("journal.jsonl"),
        "{garbage\n{\"more\":1}\n",
    )
    .unwrap();
    let damaged = report(&["--format", "html"]);
    damaged.exits(1);
    assert!(
        damaged.stdout.contains("<ul id=\"problems\">")
            && damaged
                .stdout
                .contains("the journal of workflow `test` could not be read"),
        "{}",
        damaged.stdout
    );
}

/// Debian's Chromium, where it is installed (`.ci/run` installs it and
/// sets REKEY_REQUIRE_CHROMIUM, so CI never skips this).
fn chromium() -> Option<&'static str> {
    let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    if found.is_none() && std::env::var_os("REKEY_REQUIRE_CHROMIUM").is_some() {
        panic!("REKEY_REQUIRE_CHROMIUM is set, but chromium is not installed");
    }
    found
}

fn headless(browser: &str, profile: &Path, extra: &[&str], page: &Path) -> std::process::Output {
    std::process::Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs")
}

#[test]
fn the_html_report_renders_in_chromium_with_its_histogram_and_failing_keys() {
    let Some(browser) = chromium() else {
        eprintln!("skipped: chromium is not installed");
        return;
    };
    let fleet = Fleet::new();
    let page = fleet.dir.path().join("keys.html");
    let run = fleet.report("html");
    run.exits(5);
    std::fs::write(&page, &run.stdout).unwrap();
    let profile = tempfile::tempdir().unwrap();
    let dom = headless(browser, profile.path(), &["--dump-dom"], &page);
    let dom = String::from_utf8_lossy(&dom.stdout).to_string();
    assert!(
        dom.contains("<h1>Access key report</h1>"),
        "the page rendered: {dom}"
    );
    for (id, _) in &fleet.accounts {
        let section = dom
            .split(&format!("<section class=\"account\" id=\"account-{id}\">"))
            .nth(1)
            .and_then(|s| s.split("</section>").next())
            .unwrap_or_else(|| panic!("a section for {id}"));
        assert!(
            section.contains(&format!("<svg class=\"histogram\" data-account=\"{id}\"")),
            "{section}"
        );
        assert_eq!(section.matches("<rect class=\"bar").count(), 4, "four bins");
        assert!(
            section.contains("class=\"deadline\" data-days=\"90\""),
            "{section}"
        );
        let failing = section
            .split(&format!("<table id=\"failing-{id}\">"))
            .nth(1)
            .map(|t| t.split("</table>").next().unwrap_or_default());
        for (account, user, key) in fleet.keys.iter().filter(|(a, _, _)| a == id) {
            let expected = !matches!(
                fleet.short(user),
                "cov-fresh" | "cov-ok" | "cov-exempt" | "cov-retired"
            );
            let listed = failing.is_some_and(|t| t.contains(&format!("data-key=\"{key}\"")));
            assert_eq!(
                listed, expected,
                "{account} {user} {key} among the failing keys"
            );
        }
    }
    let first = &fleet.accounts[0].0;
    assert!(
        dom.contains("<rect class=\"bar over\" data-bin=\"over 90\" data-count=\"1\""),
        "the 120-day key of {first} is past the deadline"
    );
    let shot = crate::support::root().join("target/rekey-report-screenshot.png");
    let _ = std::fs::remove_file(&shot);
    let output = headless(
        browser,
        profile.path(),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1400,2400",
        ],
        &page,
    );
    assert!(
        std::fs::metadata(&shot).is_ok_and(|m| m.len() > 10_000),
        "a screenshot at {}: {}",
        shot.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}
