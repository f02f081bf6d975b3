//! The README's first command, `scripts/demo`, end to end: it must pass
//! every time (it once slept exactly the soak while apply rounds the
//! deadline up, and failed two runs in three).

use std::process::Command;

use crate::support::root;

#[test]
fn the_readmes_demo_passes() {
    let output = Command::new(root().join("scripts/demo"))
        .current_dir(root())
        .env("REKEY", env!("CARGO_BIN_EXE_rekey"))
        .env("NO_COLOR", "1")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "scripts/demo failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains("rotated: new key in every target, old key deleted"),
        "{stdout}"
    );
    assert!(stdout.contains("Plan: 0 to rotate"), "{stdout}");
}
