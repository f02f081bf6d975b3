//! Target kinds under `rekey apply`: what each holds after a rotation and
//! after a rollback.

use std::time::Duration;

use crate::account::Account;
use crate::apply::{Setup, assert_rotated, seed};

const FAILING_CHECK: &str =
    "hooks:\n  verify:\n    - id: check\n      exec: { command: [\"false\"] }\n";

#[test]
fn secrets_manager_makes_the_new_version_current_and_keeps_the_old_as_previous() {
    let account = Account::new();
    let users = seed(&account, "", 1);
    let (user, old) = &users[0];
    let secret_id = format!("{}/{user}", account.id);
    account.secret_json(&secret_id, old);
    let setup = Setup::new(
        &account,
        "",
        "  - id: vault\n    secrets_manager: { secret_id: \"{id}/${user}\" }\npolicy:\n  soak: 0s\n",
    );
    std::thread::sleep(Duration::from_millis(1100));
    setup.apply().exits(0);
    assert_rotated(&account, &setup, &users);
    let new = account.keys(user)[0].0.clone();
    assert_eq!(account.secret_key(&secret_id, "AWSCURRENT"), Some(new));
    assert_eq!(
        account.secret_key(&secret_id, "AWSPREVIOUS").as_ref(),
        Some(old)
    );
    assert_eq!(
        account.secret_key(&secret_id, "AWSPENDING"),
        None,
        "nothing is left pending"
    );
}

#[test]
fn secrets_manager_rollback_moves_the_current_label_back_or_deletes_what_it_created() {
    let account = Account::new();
    let users = seed(&account, "", 1);
    let (user, old) = &users[0];
    let existing = format!("{}/{user}", account.id);
    account.secret_json(&existing, old);
    let setup = Setup::new(
        &account,
        "",
        &format!(
            "  - id: vault\n    secrets_manager: {{ secret_id: \"{{id}}/${{user}}\" }}\n  - id: fresh\n    secrets_manager: {{ secret_id: \"{{id}}/${{user}}/fresh\" }}\n{FAILING_CHECK}"
        ),
    );
    std::thread::sleep(Duration::from_millis(1100));
    setup.apply().exits(3);
    assert_eq!(
        account.secret_key(&existing, "AWSCURRENT").as_ref(),
        Some(old),
        "the old value is current again"
    );
    assert_eq!(
        account.secret_key(&format!("{existing}/fresh"), "AWSCURRENT"),
        None,
        "the secret the rotation created is gone"
    );
    assert_eq!(account.keys(user), [(old.clone(), true)]);
}
