//! One module per command group.

mod admin;
mod events;
mod package;
mod proofs;
mod pull;
mod push;
mod push_state;
mod resumable;
mod retention;
mod serve;
mod transfers;

pub use transfers::DEFAULT_JOBS;

use crate::args::{Cli, Command};
use crate::client::Client;
use crate::error::CliResult;
use crate::output::Output;

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> CliResult<()> {
    let out = Output { json: cli.json };
    let client = || {
        Client::new(&cli.server, cli.token.clone(), cli.actor.clone())
            .map(|c| c.resumable_over(cli.resumable_over))
    };
    match cli.command {
        Command::Serve {
            config,
            listen,
            insecure_no_auth,
        } => serve::run(config, listen, insecure_no_auth).await,
        Command::Admin(command) => admin::run(command, out).await,
        Command::Push {
            package,
            jobs,
            resume,
            paths,
        } => push::push(&client()?, out, package, jobs, resume, paths).await,
        Command::Pull {
            package_id,
            output,
            jobs,
        } => pull::pull(&client()?, out, &package_id, &output, jobs).await,
        Command::Package(command) => package::run(&client()?, out, command).await,
        Command::File(command) => push::file(&client()?, out, command).await,
        Command::Manifest {
            package_id,
            format,
            output,
        } => pull::manifest(&client()?, &package_id, format, output.as_deref()).await,
        Command::Events { since, follow } => events::run(&client()?, out, since, follow).await,
        Command::Bundle { package_id, output } => {
            proofs::bundle(&client()?, out, &package_id, &output).await
        }
        Command::VerifyBundle { file, key } => proofs::verify_bundle_file(out, &file, &key),
        Command::VerifyLog { checkpoint, key } => {
            proofs::verify_log(&client()?, out, &checkpoint, &key).await
        }
        Command::Retention(command) => retention::run(&client()?, out, command).await,
        Command::Schema(command) => retention::schema(&client()?, out, command).await,
    }
}
