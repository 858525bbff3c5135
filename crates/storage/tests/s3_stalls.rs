//! A store that accepts a request and then stalls (seen: Garage stopped
//! reading one part's body) costs the backend one stall timeout: the
//! request is sent again on a fresh connection and the upload or download
//! completes with every byte right. A loopback proxy in front of the real
//! server (Garage, Ceph RGW) freezes one connection, once. Skipped without
//! the servers' environment, as in the conformance suite.

mod common;

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use artifactstore_core::{ContentAddress, FileDigests};
use artifactstore_storage::{Backend, S3Backend, S3Settings};
use bytes::Bytes;
use common::{pattern, read};
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const STALL_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// Bytes the backend sends (request bodies).
    Upload,
    /// Bytes the store sends (response bodies).
    Download,
}

/// Forwards connections to the store; the first connection to carry more
/// than `after_bytes` in `direction` stops forwarding there for good.
struct StallingProxy {
    addr: SocketAddr,
    stalls: Arc<AtomicUsize>,
}

impl StallingProxy {
    async fn start(upstream: SocketAddr, direction: Direction, after_bytes: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let armed = Arc::new(AtomicBool::new(true));
        let stalls = Arc::new(AtomicUsize::new(0));
        let counter = stalls.clone();
        // The tasks end with the test's runtime.
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(store) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (store_read, store_write) = store.into_split();
                for (from, to, this_way) in [
                    (
                        Box::new(client_read) as Box<dyn tokio::io::AsyncRead + Send + Unpin>,
                        Box::new(store_write) as Box<dyn tokio::io::AsyncWrite + Send + Unpin>,
                        direction == Direction::Upload,
                    ),
                    (
                        Box::new(store_read),
                        Box::new(client_write),
                        direction == Direction::Download,
                    ),
                ] {
                    let stall = this_way.then(|| (armed.clone(), counter.clone()));
                    tokio::spawn(pump(from, to, stall, after_bytes));
                }
            }
        });
        Self { addr, stalls }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn stalls(&self) -> usize {
        self.stalls.load(Ordering::SeqCst)
    }
}

async fn pump(
    mut from: Box<dyn tokio::io::AsyncRead + Send + Unpin>,
    mut to: Box<dyn tokio::io::AsyncWrite + Send + Unpin>,
    stall: Option<(Arc<AtomicBool>, Arc<AtomicUsize>)>,
    after_bytes: usize,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut forwarded = 0;
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some((armed, stalls)) = &stall {
            if forwarded + n > after_bytes && armed.swap(false, Ordering::SeqCst) {
                stalls.fetch_add(1, Ordering::SeqCst);
                // Neither forward nor close: the peer waits, as on a store
                // that hangs.
                std::future::pending::<()>().await;
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
        forwarded += n;
    }
    let _ = to.shutdown().await;
}

/// `settings` pointed at a proxy in front of the store that stalls
/// `direction` once after `after_bytes`, with a short stall timeout.
async fn through_stalling_proxy(
    settings: &S3Settings,
    direction: Direction,
    after_bytes: usize,
) -> (S3Backend, StallingProxy) {
    let upstream = settings
        .endpoint
        .as_deref()
        .expect("endpoint")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_socket_addrs()
        .unwrap()
        .next()
        .unwrap();
    let proxy = StallingProxy::start(upstream, direction, after_bytes).await;
    let backend = S3Backend::new(S3Settings {
        endpoint: Some(proxy.endpoint()),
        stall_timeout: STALL_TIMEOUT,
        ..settings.clone()
    })
    .unwrap();
    (backend, proxy)
}

async fn store(backend: &dyn Backend, data: &[u8]) -> String {
    let key = ContentAddress::of(data).object_key();
    let mut writer = backend.begin_write().await.unwrap();
    for piece in data.chunks(1024 * 1024) {
        writer.write(Bytes::copy_from_slice(piece)).await.unwrap();
    }
    writer.commit(&key).await.unwrap();
    key
}

async fn a_part_upload_that_stalls_is_sent_again(name: &str) {
    let Some(settings) = common::s3_settings(name) else {
        return;
    };
    // Halfway into the first 16 MiB part.
    let (proxied, proxy) = through_stalling_proxy(&settings, Direction::Upload, 8 << 20).await;
    let data = pattern(40 * 1024 * 1024 + 777);
    let key = store(&proxied, &data).await;
    assert_eq!(proxy.stalls(), 1, "{name}: the proxy never stalled");
    let direct = S3Backend::new(settings).unwrap();
    let back = read(direct.open(&key, None).await.unwrap()).await;
    assert_eq!(FileDigests::of(&back), FileDigests::of(&data), "{name}");
}

async fn a_download_that_stalls_resumes_where_it_stopped(name: &str) {
    let Some(settings) = common::s3_settings(name) else {
        return;
    };
    let (proxied, proxy) = through_stalling_proxy(&settings, Direction::Download, 3 << 20).await;
    let data = pattern(20 * 1024 * 1024 + 4321);
    let key = store(&S3Backend::new(settings).unwrap(), &data).await;
    let back = read(proxied.open(&key, None).await.unwrap()).await;
    assert_eq!(proxy.stalls(), 1, "{name}: the proxy never stalled");
    assert_eq!(FileDigests::of(&back), FileDigests::of(&data), "{name}");
}

/// The stall timeout bounds waiting for the store, not a whole download:
/// a client that reads slowly keeps its download well past it, and one
/// that stops reading for longer than it costs a resumption, not bytes.
async fn a_slow_reader_outlasts_the_stall_timeout(name: &str) {
    let Some(settings) = common::s3_settings(name) else {
        return;
    };
    let backend = S3Backend::new(S3Settings {
        stall_timeout: Duration::from_secs(1),
        ..settings
    })
    .unwrap();
    let data = pattern(9 * 1024 * 1024);
    let key = store(&backend, &data).await;
    let mut stream = backend.open(&key, None).await.unwrap();
    let started = Instant::now();
    let mut back = Vec::new();
    while let Some(chunk) = stream.next().await {
        let first = back.is_empty();
        back.extend_from_slice(&chunk.unwrap());
        if first {
            tokio::time::sleep(Duration::from_millis(1500)).await;
        } else if started.elapsed() < Duration::from_secs(4) {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    assert!(started.elapsed() >= Duration::from_secs(4));
    assert!(back == data, "{name}: the download differs from the object");
}

macro_rules! stall_tests {
    ($($case:ident),* $(,)?) => {
        mod garage {
            $(#[tokio::test]
            async fn $case() {
                super::$case("GARAGE").await;
            })*
        }
        mod ceph_rgw {
            $(#[tokio::test]
            async fn $case() {
                super::$case("CEPH").await;
            })*
        }
    };
}

stall_tests!(
    a_part_upload_that_stalls_is_sent_again,
    a_download_that_stalls_resumes_where_it_stopped,
    a_slow_reader_outlasts_the_stall_timeout,
);
