//! Faults of the services the registry depends on: a locked or unreachable
//! database answers 503 within its timeout instead of hanging, a full disk
//! answers 507; neither records anything, reads keep working, and the
//! registry recovers when the fault goes.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use artifactstore_registry::core::token::Scope;
use common::{body, body_in, new_package, postgres_admin_url, read_all, Engine, TestEnv};
use sqlx::Connection;

/// Bounds every call: a fault must turn into an error, never a hang.
async fn bounded<T>(call: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), call)
        .await
        .expect("the call hung instead of failing")
}

#[test]
fn a_locked_sqlite_database_answers_503_within_the_timeout() {
    common::run_on(Engine::Sqlite, async {
        let env = TestEnv::with_config(|config| config.database.timeout_seconds = 1).await;
        let package = env.package("standard").await;
        let url = env.config.database_url();
        let mut holder = sqlx::AnyConnection::connect(&format!("{url}?mode=rw"))
            .await
            .unwrap();
        sqlx::query("BEGIN EXCLUSIVE")
            .execute(&mut holder)
            .await
            .unwrap();
        let err = bounded(
            env.registry
                .create_package(new_package("p", "standard"), "t"),
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), "service_unavailable");
        let err = bounded(env.registry.ingest_file(
            package,
            "a",
            "text/plain",
            body(b"a"),
            Default::default(),
            "t",
        ))
        .await
        .unwrap_err();
        assert_eq!(err.code(), "service_unavailable");
        sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
        drop(holder);
        bounded(
            env.registry
                .create_package(new_package("p", "standard"), "t"),
        )
        .await
        .unwrap();
        assert!(env.registry.replay_check().await.unwrap().identical);
    });
}

/// A TCP proxy to PostgreSQL that the test can cut.
struct Proxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let links: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (up2, links2) = (up.clone(), links.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is refused
                }
                let link = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                links2.lock().unwrap().push(link);
            }
        });
        Self { addr, up, links }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[test]
fn an_unreachable_postgresql_answers_503_and_the_registry_recovers() {
    common::run_on(Engine::Postgres, async {
        let env = TestEnv::new().await;
        let target: SocketAddr = {
            let host = postgres_admin_url()
                .split('@')
                .nth(1)
                .and_then(|r| r.split('/').next())
                .unwrap()
                .to_owned();
            tokio::net::lookup_host(host).await.unwrap().next().unwrap()
        };
        let proxy = Proxy::start(target).await;
        let direct = env.config.database_url();
        let (scheme_user, rest) = direct.split_once('@').unwrap();
        let database = rest.split_once('/').unwrap().1;
        let proxied = format!("{scheme_user}@{}/{database}", proxy.addr);
        let mut config = env.config.clone();
        config.database.url = Some(proxied);
        config.database.timeout_seconds = 1;
        let registry = artifactstore_registry::Registry::open(&config)
            .await
            .unwrap();
        let package = registry
            .create_package(new_package("p", "standard"), "t")
            .await
            .unwrap();
        let package_id: uuid::Uuid = package.id.parse().unwrap();
        let file = registry
            .ingest_file(
                package_id,
                "a",
                "text/plain",
                body(b"kept"),
                Default::default(),
                "t",
            )
            .await
            .unwrap();

        proxy.cut();
        let err = bounded(registry.create_package(new_package("q", "standard"), "t"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "service_unavailable");
        // An upload's check before its bytes flow is read in a batch with
        // others (file_checks.rs); a failed batch is a 503 too, not a 500.
        let err = bounded(registry.ingest_file(
            package_id,
            "b",
            "text/plain",
            body(b"refused"),
            Default::default(),
            "t",
        ))
        .await
        .unwrap_err();
        assert_eq!(err.code(), "service_unavailable");
        let health = bounded(registry.health()).await;
        assert!(!health.ok && !health.database.ok);

        proxy.restore();
        let mut recovered = false;
        for _ in 0..20 {
            if bounded(registry.create_package(new_package("r", "standard"), "t"))
                .await
                .is_ok()
            {
                recovered = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert!(
            recovered,
            "the registry did not recover when the database returned"
        );
        let again = registry
            .file_metadata(file.id.parse().unwrap())
            .await
            .unwrap();
        assert_eq!(
            read_all(registry.open_file(&again, None).await.unwrap()).await,
            b"kept"
        );
        assert!(registry.replay_check().await.unwrap().identical);
    });
}

#[test]
fn token_reads_held_by_a_lock_answer_503_within_the_timeout_and_then_recover() {
    // Every request's token is read in a batch with others
    // (token_reads.rs), bounded as a whole by the database timeout. A read
    // that hangs (here: a lock on the tokens' table; on SQLite, in WAL
    // mode, readers never wait) must answer each waiting caller 503, not
    // 401 (a client would throw its token away) and not never.
    common::run_on(Engine::Postgres, async {
        let env = TestEnv::with_config(|config| config.database.timeout_seconds = 1).await;
        let (_, secret) = env
            .registry
            .create_token("ci", Scope::Read, vec![], None, "admin")
            .await
            .unwrap();
        bounded(env.registry.authenticate(&secret)).await.unwrap();

        let mut holder = sqlx::AnyConnection::connect(&env.config.database_url())
            .await
            .unwrap();
        sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
        sqlx::query("LOCK TABLE api_tokens IN ACCESS EXCLUSIVE MODE")
            .execute(&mut holder)
            .await
            .unwrap();
        let waiting: Vec<_> = (0..8)
            .map(|_| {
                let registry = env.registry.clone();
                let secret = secret.clone();
                tokio::spawn(async move { bounded(registry.authenticate(&secret)).await })
            })
            .collect();
        for answer in waiting {
            let err = answer.await.unwrap().unwrap_err();
            assert_eq!(err.code(), "service_unavailable", "{err}");
        }
        sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
        drop(holder);

        // The rows are read afresh by the next batch: the token works again.
        let principal = bounded(env.registry.authenticate(&secret)).await.unwrap();
        assert_eq!(principal.name, "ci");
    });
}

#[test]
fn pooled_postgresql_connections_the_server_ended_are_replaced_after_a_second_idle() {
    // Pooled connections are pinged before use only once they have sat
    // idle over a second (crates/store/src/lib.rs): one the server ended
    // (a restart, a failover, an administrator) must not fail the next
    // request after that.
    common::run_on(Engine::Postgres, async {
        let env = TestEnv::new().await;
        let package = env.package("standard").await;
        env.put(package, "before.txt", b"before").await;
        let database = env.config.database_url();
        let database = database.rsplit('/').next().unwrap().to_owned();
        sqlx::any::install_default_drivers();
        let mut admin = sqlx::AnyConnection::connect(&postgres_admin_url())
            .await
            .unwrap();
        let ended: Vec<(bool,)> = sqlx::query_as(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(&database)
        .fetch_all(&mut admin)
        .await
        .unwrap();
        assert!(!ended.is_empty(), "the registry's pool held connections");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let file = bounded(env.registry.ingest_file(
            package,
            "after.txt",
            "text/plain",
            body(b"after"),
            Default::default(),
            "t",
        ))
        .await
        .unwrap();
        assert_eq!(file.relative_path, "after.txt");
        assert_eq!(env.registry.list_files(package).await.unwrap().len(), 2);
    });
}

/// A tmpfs of `bytes`, unmounted on drop. Needs root (CI has it); without
/// it the test is skipped with a reason, and fails under `CI=true`.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(bytes: u64) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status();
        if status.is_ok_and(|s| s.success()) {
            return Some(Self { dir });
        }
        common::skip_or_fail("small disk", "cannot mount a small tmpfs (needs root)");
        None
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn a_full_disk_answers_507_records_nothing_keeps_reads_and_recovers() {
    common::run_on(Engine::Sqlite, async {
        let Some(disk) = SmallDisk::mount(4 * 1024 * 1024) else {
            return;
        };
        let objects = disk.dir.path().to_path_buf();
        let env = TestEnv::with_config(|config| {
            config.backends = vec![artifactstore_registry::config::BackendConfig {
                id: "local".into(),
                kind: artifactstore_registry::config::BackendType::Filesystem,
                root: Some(objects.clone()),
                endpoint: None,
                region: None,
                bucket: None,
                path_style: false,
                access_key_id: None,
                secret_access_key: None,
                prefix: None,
                stall_timeout_seconds: None,
            }];
        })
        .await;
        let package = env.package("standard").await;
        let small = vec![7u8; 512 * 1024];
        let kept = env.put(package, "kept.bin", &small).await;
        let ballast = objects.join("ballast");
        std::fs::write(&ballast, vec![0u8; 2 * 1024 * 1024]).unwrap();
        let head = env.event_count().await;

        let big: Vec<u8> = (0..3 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
        let err = bounded(env.registry.ingest_file(
            package,
            "big.bin",
            "application/octet-stream",
            body_in(&big, 64 * 1024),
            Default::default(),
            "t",
        ))
        .await
        .unwrap_err();
        assert_eq!(err.code(), "storage_full");
        assert_eq!(
            env.event_count().await,
            head,
            "a refused upload records nothing"
        );
        let back = env
            .registry
            .file_metadata(kept.id.parse().unwrap())
            .await
            .unwrap();
        assert_eq!(
            read_all(env.registry.open_file(&back, None).await.unwrap()).await,
            small,
            "reads keep working"
        );

        std::fs::remove_file(&ballast).unwrap();
        let stored = bounded(env.registry.ingest_file(
            package,
            "big.bin",
            "application/octet-stream",
            body_in(&big, 64 * 1024),
            Default::default(),
            "t",
        ))
        .await
        .unwrap();
        assert_eq!(stored.size_bytes, big.len() as u64);
        drop(env);
        drop(disk);
    });
}
