//! The OpenAPI document against the server it describes: schemathesis (a
//! peer client, pinned and installed by .ci/run) generates requests from
//! `/openapi.json` and checks every answer against it, with every check and
//! every phase, the stateful one included (tests/schemathesis/
//! schemathesis.toml: fixed seed, and the few state-dependent refusals it
//! expects). Skipped, with the reason printed, where schemathesis is not
//! installed; under `CI=true` that is a failure.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::Served;

/// `ARTIFACTSTORE_SCHEMATHESIS` (as .ci/run sets it), else `schemathesis`
/// on the PATH.
fn schemathesis() -> Option<PathBuf> {
    let candidate = std::env::var_os("ARTIFACTSTORE_SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("schemathesis"));
    let answers = Command::new(&candidate)
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    answers.then_some(candidate)
}

#[test]
fn schemathesis_finds_no_disagreement_between_the_document_and_the_server() {
    let Some(schemathesis) = schemathesis() else {
        artifactstore_testkit::skip_or_fail(
            "schemathesis",
            "schemathesis is not installed (set ARTIFACTSTORE_SCHEMATHESIS or put it on the PATH; .ci/run installs the pinned version)",
        );
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let served = Served::start(["--data-dir", data.path().to_str().unwrap()], &[]);
    let config = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/schemathesis/schemathesis.toml"
    );
    let output = Command::new(&schemathesis)
        .args(["--config-file", config, "run"])
        .arg(format!("{}/openapi.json", served.url))
        .current_dir(data.path())
        .env("NO_COLOR", "1")
        // tests/schemathesis/hooks.py: a serializer for tus PATCH bodies.
        .env("SCHEMATHESIS_HOOKS", "hooks")
        .env(
            "PYTHONPATH",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/schemathesis"),
        )
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found disagreements:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // A run that reached nothing proves nothing: every operation of the
    // document was selected and tested.
    let count = |label: &str| {
        report
            .lines()
            .find_map(|line| line.trim().strip_prefix(label))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {label:?} line in the report:\n{report}"))
            .to_owned()
    };
    let selected = count("Selected:");
    let tested = count("Tested:");
    let (chosen, total) = selected.split_once('/').unwrap();
    assert_eq!(chosen, total, "{report}");
    assert_eq!(tested, total, "{report}");
    assert!(total.parse::<u32>().unwrap() > 20, "{report}");
}
