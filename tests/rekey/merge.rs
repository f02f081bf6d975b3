//! The `uses:` merge rules, checked on the merged model.

use rekey::targets::TargetKind;
use rekey::workflow::document::MakeRoom;
use rekey::workflow::vocabulary::HookPhase;
use rekey::workflow::{Duration, check};

use crate::support::root;

#[test]
fn libraries_merge_in_order_and_the_using_file_overrides() {
    let checked = check(&root().join("tests/fixtures/valid/overrides.yaml")).expect("valid");
    let workflow = checked.workflow;
    let targets: Vec<(&str, &str)> = workflow
        .targets
        .iter()
        .map(|t| (t.id.as_str(), t.kind.key()))
        .collect();
    assert_eq!(
        targets,
        [
            ("app-param", "secrets_manager"),
            ("profile", "credentials_file"),
            ("push", "exec")
        ],
        "library targets first; an override replaces in place"
    );
    let hooks: Vec<(&str, HookPhase)> = workflow
        .hooks
        .iter()
        .map(|h| (h.id.as_str(), h.phase))
        .collect();
    assert_eq!(
        hooks,
        [
            ("works", HookPhase::Verify),
            ("health", HookPhase::VerifyAfterDisable)
        ]
    );
    assert_eq!(
        workflow.policy.soak,
        Duration::from_days(1),
        "the using file settles a conflict"
    );
    assert_eq!(
        workflow.policy.concurrency, 2,
        "a library's policy applies where the file is silent"
    );
    assert_eq!(workflow.policy.make_room, MakeRoom::DeleteInactive);
}

#[test]
fn library_params_are_bound_to_the_using_files_values() {
    let checked = check(&root().join("tests/fixtures/valid/overrides.yaml")).expect("valid");
    let TargetKind::CredentialsFile(file) = &checked.workflow.targets[1].kind else {
        panic!("profile is a credentials file")
    };
    assert_eq!(
        file.profile.as_ref().map(|p| p.as_str()),
        Some("${user}"),
        "a default may itself refer to the user"
    );
    let lib = check(&root().join("workflows/ci-deployers.yaml"))
        .expect("valid")
        .workflow;
    let TargetKind::SsmParameter(param) = &lib.targets[0].kind else {
        panic!("app-param is an SSM parameter")
    };
    assert_eq!(
        param.name.as_str(),
        "/apps/${params.env}/${user}/aws",
        "with: values are written in the using file's namespace"
    );
    assert_eq!(
        param.kms_key_id.as_ref().map(|k| k.as_str()),
        Some("alias/aws/ssm"),
        "defaults fill params not given"
    );
}
