//! What the binary's integration tests share: `artifactstore serve` on a
//! loopback port the kernel picks.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_artifactstore");

/// A running `artifactstore serve`, killed (SIGKILL) when dropped.
pub struct Served {
    pub child: Child,
    pub url: String,
}

impl Served {
    /// Starts `serve --listen 127.0.0.1:0` with `args` (`--data-dir D`,
    /// `--config F`) and `env`, and waits until it says where it listens.
    /// The kernel picks the port as the server binds it: a port picked by
    /// the test and released for the server could be taken in between by
    /// another test's server, which this one would then talk to.
    pub fn start<I, S>(args: I, env: &[(&str, &str)]) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = Command::new(BIN);
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .env_remove("ARTIFACTSTORE_CONFIG")
            .env_remove("ARTIFACTSTORE_AUTH_REQUIRED")
            // The address is in the start-up line, logged at info.
            .env("ARTIFACTSTORE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (address_tx, address_rx) = std::sync::mpsc::channel();
        // Reads the log to its end, so the server never blocks on a full
        // pipe.
        std::thread::spawn(move || {
            let mut address_tx = Some(address_tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if !line.contains("artifactstore listening") {
                    continue;
                }
                let address = line
                    .split_whitespace()
                    .find_map(|field| field.strip_prefix("address="));
                if let (Some(tx), Some(address)) = (address_tx.take(), address) {
                    let _ = tx.send(address.to_owned());
                }
            }
        });
        let listen = address_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the server did not start listening");
        Self {
            child,
            url: format!("http://{listen}"),
        }
    }

    /// Kills the server at once (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.kill();
    }
}
