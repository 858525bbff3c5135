//! Proof that leaves the server: `bundle` downloads an evidence bundle;
//! `verify-bundle` and `verify-log` check what the server handed out with
//! nothing but the log's verifier key.

use std::io::Write as _;
use std::path::Path;

use artifactstore_api::ConsistencyProof;
use artifactstore_registry::bundle::verify::verify_bundle;
use artifactstore_registry::log::proof::{decode_hash, verify_consistency, SignedCheckpoint};
use futures::StreamExt;

use super::push::progress;
use crate::client::Client;
use crate::error::{CliError, CliResult};
use crate::output::Output;

/// The verifier key: the text itself, or a file holding it.
fn verifier_key(given: &str) -> CliResult<String> {
    let path = Path::new(given);
    if !given.contains('+') || path.is_file() {
        return std::fs::read_to_string(path)
            .map(|text| text.trim().to_owned())
            .map_err(|e| CliError::io(path, e));
    }
    Ok(given.trim().to_owned())
}

/// `artifactstore bundle ID -o FILE`.
pub async fn bundle(
    client: &Client,
    out: Output,
    package_id: &str,
    output: &Path,
) -> CliResult<()> {
    let request = client.request(
        reqwest::Method::GET,
        client.url(&["v1", "packages", package_id, "bundle"]),
    );
    let response = client.send(request).await?;
    let total = response.content_length().unwrap_or(0);
    let bar = progress(out, total, "bundle");
    let directory = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut partial =
        tempfile::NamedTempFile::new_in(directory).map_err(|e| CliError::io(directory, e))?;
    let mut stream = response.bytes_stream();
    let mut written = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| CliError::Protocol(format!("the bundle broke off: {e}")))?;
        partial
            .write_all(&chunk)
            .map_err(|e| CliError::io(partial.path(), e))?;
        written += chunk.len() as u64;
        bar.set_position(written);
    }
    bar.finish_and_clear();
    if total != 0 && written != total {
        return Err(CliError::Protocol(format!(
            "the bundle broke off after {written} of {total} bytes"
        )));
    }
    partial
        .as_file()
        .sync_all()
        .map_err(|e| CliError::io(partial.path(), e))?;
    partial
        .persist(output)
        .map_err(|e| CliError::io(output, e.error))?;
    out.show(
        &serde_json::json!({"package_id": package_id, "file": output, "bytes": written}),
        || format!("wrote {} ({written} bytes)", output.display()),
    );
    Ok(())
}

/// `artifactstore verify-bundle FILE --key KEY`.
pub fn verify_bundle_file(out: Output, file: &Path, key: &str) -> CliResult<()> {
    let key = verifier_key(key)?;
    let tar = std::fs::File::open(file).map_err(|e| CliError::io(file, e))?;
    let report = verify_bundle(std::io::BufReader::with_capacity(1 << 20, tar), &key)
        .map_err(|e| CliError::CheckFailed(format!("{}: {e}", file.display())))?;
    out.show(&report, || {
        let mut text = format!(
            "bundle verified: package {} ({})\n",
            report.package_id, report.content_address
        );
        for check in &report.checks {
            text.push_str(&format!("  ok  {check}\n"));
        }
        text.trim_end().to_owned()
    });
    Ok(())
}

/// `artifactstore verify-log --checkpoint FILE --key KEY`.
pub async fn verify_log(
    client: &Client,
    out: Output,
    checkpoint: &Path,
    key: &str,
) -> CliResult<()> {
    let key = verifier_key(key)?;
    let saved_note = std::fs::read(checkpoint).map_err(|e| CliError::io(checkpoint, e))?;
    let saved = SignedCheckpoint::open(&saved_note, &key)
        .map_err(|e| CliError::CheckFailed(format!("{}: {e}", checkpoint.display())))?;
    let request = client.request(
        reqwest::Method::GET,
        client.url(&["v1", "log", "checkpoint"]),
    );
    let current_note = client
        .send(request)
        .await?
        .bytes()
        .await
        .map_err(|e| CliError::Protocol(e.to_string()))?;
    let current = SignedCheckpoint::open(&current_note, &key)
        .map_err(|e| CliError::CheckFailed(format!("the server's checkpoint: {e}")))?;
    if current.tree_size < saved.tree_size {
        return Err(CliError::CheckFailed(format!(
            "the server's log has {} events, fewer than the {} of the saved checkpoint: it was cut short or replaced",
            current.tree_size, saved.tree_size
        )));
    }
    let proof: ConsistencyProof = client
        .get_json(
            &["v1", "log", "proof", "consistency"],
            &[
                ("from", saved.tree_size.to_string()),
                ("to", current.tree_size.to_string()),
            ],
        )
        .await?;
    let hashes = proof
        .hashes
        .iter()
        .map(|h| decode_hash(h))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CliError::CheckFailed(format!("the server's proof: {e}")))?;
    verify_consistency(
        saved.tree_size,
        &saved.root,
        current.tree_size,
        &current.root,
        &hashes,
    )
    .map_err(|e| CliError::CheckFailed(format!("the log was rewritten: {e}")))?;
    out.show(
        &serde_json::json!({
            "consistent": true,
            "saved_tree_size": saved.tree_size,
            "current_tree_size": current.tree_size,
            "key": saved.origin,
        }),
        || {
            format!(
                "log consistent: the server's tree of {} events (signed by {}) extends the saved checkpoint of {}",
                current.tree_size, current.origin, saved.tree_size
            )
        },
    );
    Ok(())
}
