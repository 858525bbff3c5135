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
use common::{pattern, read, store};
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const STALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the proxy stalls, once.
#[derive(Clone, Copy)]
enum Stall {
    /// The first connection to send the store more than this many bytes
    /// (request bodies).
    UploadAfter(usize),
    /// The first connection to receive more than this many bytes from the
    /// store (response bodies).
    DownloadAfter(usize),
    /// The answer to the first multipart completion (`POST ...?uploadId=`):
    /// the store completes the upload, the backend never hears.
    CompletionAnswer,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Request,
    Response,
}

/// Forwards connections to the store, and stops forwarding for good at
/// the point its [`Stall`] names.
struct StallingProxy {
    addr: SocketAddr,
    stalls: Arc<AtomicUsize>,
}

/// What the two pumps of a proxy share.
#[derive(Clone)]
struct StallState {
    stall: Stall,
    armed: Arc<AtomicBool>,
    stalls: Arc<AtomicUsize>,
    /// This connection carried a multipart completion.
    completion_sent: Arc<AtomicBool>,
}

impl StallingProxy {
    async fn start(upstream: SocketAddr, stall: Stall) -> Self {
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
                let state = StallState {
                    stall,
                    armed: armed.clone(),
                    stalls: counter.clone(),
                    completion_sent: Arc::new(AtomicBool::new(false)),
                };
                let (client_read, client_write) = client.into_split();
                let (store_read, store_write) = store.into_split();
                tokio::spawn(pump(
                    Box::new(client_read),
                    Box::new(store_write),
                    Side::Request,
                    state.clone(),
                ));
                tokio::spawn(pump(
                    Box::new(store_read),
                    Box::new(client_write),
                    Side::Response,
                    state,
                ));
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
    side: Side,
    state: StallState,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut forwarded = 0;
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let read = &buf[..n];
        let stall_here = match (state.stall, side) {
            (Stall::UploadAfter(bytes), Side::Request)
            | (Stall::DownloadAfter(bytes), Side::Response) => forwarded + n > bytes,
            (Stall::CompletionAnswer, Side::Request) => {
                if read.starts_with(b"POST ") && read.windows(9).any(|w| w == b"uploadId=") {
                    state.completion_sent.store(true, Ordering::SeqCst);
                }
                false
            }
            (Stall::CompletionAnswer, Side::Response) => {
                state.completion_sent.load(Ordering::SeqCst)
            }
            _ => false,
        };
        if stall_here && state.armed.swap(false, Ordering::SeqCst) {
            state.stalls.fetch_add(1, Ordering::SeqCst);
            // Neither forward nor close: the peer waits, as on a store
            // that hangs.
            std::future::pending::<()>().await;
        }
        if to.write_all(read).await.is_err() {
            break;
        }
        forwarded += n;
    }
    let _ = to.shutdown().await;
}

/// `settings` pointed at a proxy in front of the store that stalls once
/// where `stall` says, with a short stall timeout.
async fn through_stalling_proxy(settings: &S3Settings, stall: Stall) -> (S3Backend, StallingProxy) {
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
    let proxy = StallingProxy::start(upstream, stall).await;
    let backend = S3Backend::new(S3Settings {
        endpoint: Some(proxy.endpoint()),
        stall_timeout: STALL_TIMEOUT,
        ..settings.clone()
    })
    .unwrap();
    (backend, proxy)
}

async fn a_part_upload_that_stalls_is_sent_again(name: &str) {
    let Some(settings) = common::s3_settings(name) else {
        return;
    };
    // Halfway into the first 16 MiB part.
    let (proxied, proxy) = through_stalling_proxy(&settings, Stall::UploadAfter(8 << 20)).await;
    let data = pattern(40 * 1024 * 1024 + 777);
    let key = store(&proxied, &data, 1 << 20).await;
    assert_eq!(proxy.stalls(), 1, "{name}: the proxy never stalled");
    let direct = S3Backend::new(settings).unwrap();
    let back = read(direct.open(&key, None).await.unwrap()).await;
    assert_eq!(FileDigests::of(&back), FileDigests::of(&data), "{name}");
}

async fn a_download_that_stalls_resumes_where_it_stopped(name: &str) {
    let Some(settings) = common::s3_settings(name) else {
        return;
    };
    let (proxied, proxy) = through_stalling_proxy(&settings, Stall::DownloadAfter(3 << 20)).await;
    let data = pattern(20 * 1024 * 1024 + 4321);
    let key = store(&S3Backend::new(settings).unwrap(), &data, 1 << 20).await;
    let back = read(proxied.open(&key, None).await.unwrap()).await;
    assert_eq!(proxy.stalls(), 1, "{name}: the proxy never stalled");
    assert_eq!(FileDigests::of(&back), FileDigests::of(&data), "{name}");
}

/// A completion whose answer never comes is retried; the retry may find
/// the upload already completed (Garage answers 404), and the object being
/// there is what counts. Both multipart paths: to a staging key (then a
/// copy) and, declared, straight to the content key.
async fn a_completion_whose_answer_is_lost_still_commits(name: &str) {
    let Some(settings) = common::s3_settings(name) else {
        return;
    };
    let direct = S3Backend::new(settings.clone()).unwrap();
    for declared in [false, true] {
        let (proxied, proxy) = through_stalling_proxy(&settings, Stall::CompletionAnswer).await;
        let data = pattern(20 * 1024 * 1024 + usize::from(declared));
        let key = ContentAddress::of(&data).object_key();
        let mut writer = if declared {
            proxied.begin_write_expecting(&key).await.unwrap()
        } else {
            proxied.begin_write().await.unwrap()
        };
        for piece in data.chunks(1024 * 1024) {
            writer.write(Bytes::copy_from_slice(piece)).await.unwrap();
        }
        writer.commit(&key).await.unwrap();
        assert_eq!(proxy.stalls(), 1, "{name}: the proxy never stalled");
        let back = read(direct.open(&key, None).await.unwrap()).await;
        assert!(
            back == data,
            "{name}, declared {declared}: the object differs"
        );
    }
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
    let key = store(&backend, &data, 1 << 20).await;
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
    a_completion_whose_answer_is_lost_still_commits,
    a_slow_reader_outlasts_the_stall_timeout,
);
