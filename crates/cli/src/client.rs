//! The HTTP client the client commands share.

use artifactstore_api::Problem;
use bytes::Bytes;
use futures::Stream;
use reqwest::{Method, RequestBuilder, Response, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{CliError, CliResult};

/// A client of one server.
pub struct Client {
    base: Url,
    http: reqwest::Client,
    token: Option<String>,
    actor: Option<String>,
    resumable_over: u64,
}

impl Client {
    /// A client for `server`.
    pub fn new(server: &str, token: Option<String>, actor: Option<String>) -> CliResult<Self> {
        let base = Url::parse(server)
            .map_err(|e| CliError::Usage(format!("invalid --server URL {server:?}: {e}")))?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("artifactstore-cli/", env!("CARGO_PKG_VERSION")))
            // Below the server's default header timeout (20 s), which
            // closes idle kept-alive connections: a pooled connection is
            // dropped here before the server may close it under a request.
            .pool_idle_timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| CliError::Usage(e.to_string()))?;
        Ok(Self {
            base,
            http,
            token,
            actor,
            resumable_over: u64::MAX,
        })
    }

    /// The server's URL.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// Files of at least `bytes` go up as resumable uploads.
    pub fn resumable_over(mut self, bytes: u64) -> Self {
        self.resumable_over = bytes;
        self
    }

    /// Whether a file of `size` bytes goes up as a resumable upload.
    pub fn resumable(&self, size: u64) -> bool {
        size >= self.resumable_over
    }

    /// `path` (an absolute path, as `Location` gives) on this server.
    pub fn url_of(&self, path: &str) -> CliResult<Url> {
        self.base
            .join(path)
            .map_err(|e| CliError::Protocol(format!("bad URL {path:?} from the server: {e}")))
    }

    /// The URL of `segments` under the server root; each segment is
    /// percent-encoded, so a relative path's `/` separate segments and
    /// nothing else does.
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            path.extend(segments);
        }
        url
    }

    /// A request with the auth and actor headers.
    pub fn request(&self, method: Method, url: Url) -> RequestBuilder {
        let mut request = self.http.request(method, url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(actor) = &self.actor {
            request = request.header("X-Artifactstore-Actor", actor);
        }
        request
    }

    /// Sends, and turns a problem answer into [`CliError::Server`].
    pub async fn send(&self, request: RequestBuilder) -> CliResult<Response> {
        let response = request.send().await.map_err(|e| CliError::Unreachable {
            url: self.base.to_string(),
            cause: root_cause(&e),
        })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        // Not every error comes from this API (a proxy's HTML page, an
        // empty answer): those are shown as they are.
        Err(match serde_json::from_str::<Problem>(&text) {
            Ok(problem) => CliError::Server {
                status,
                code: problem.code,
                detail: if problem.detail.is_empty() {
                    problem.title
                } else {
                    problem.detail
                },
            },
            Err(_) => CliError::Server {
                status,
                code: "http_error".into(),
                detail: if text.is_empty() {
                    format!("HTTP {status}")
                } else {
                    text
                },
            },
        })
    }

    /// Sends and decodes a JSON answer.
    pub async fn json<T: DeserializeOwned>(&self, request: RequestBuilder) -> CliResult<T> {
        let response = self.send(request).await?;
        response
            .json()
            .await
            .map_err(|e| CliError::Protocol(e.to_string()))
    }

    /// GET a JSON document.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> CliResult<T> {
        let request = self.request(Method::GET, self.url(segments)).query(query);
        self.json(request).await
    }

    /// POST a JSON body, decode the JSON answer.
    pub async fn post_json<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        body: &impl Serialize,
    ) -> CliResult<T> {
        let request = self.request(Method::POST, self.url(segments)).json(body);
        self.json(request).await
    }

    /// POST with no body (an action on `segments`, such as finalize); JSON
    /// answer. No body rather than `null`: a body the server does not read
    /// makes it close the connection after answering.
    pub async fn post_action<T: DeserializeOwned>(&self, segments: &[&str]) -> CliResult<T> {
        let request = self.request(Method::POST, self.url(segments));
        self.json(request).await
    }

    /// GET a byte stream.
    pub async fn get_stream(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> CliResult<impl Stream<Item = reqwest::Result<Bytes>>> {
        let request = self.request(Method::GET, self.url(segments)).query(query);
        Ok(self.send(request).await?.bytes_stream())
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
