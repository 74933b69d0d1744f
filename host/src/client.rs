//! The command line's REST client: every CLI action that changes a running host goes
//! through the same API (and authorization) as any other client.

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The host could not be reached or stopped answering: asking again may help.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unreachable(String);

pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    /// A client for the host at `base`; it also trusts the CA certificate in
    /// `NUKISASHI_CA_CERT` (a PEM file), for sites with a private CA.
    pub fn new(base: &str, token: Option<String>) -> Self {
        let ca = std::env::var_os("NUKISASHI_CA_CERT").map(std::path::PathBuf::from);
        let http = crate::tls::client_with_ca(ca.as_deref()).unwrap_or_else(|e| {
            eprintln!("warning: {e:#}; using the system's roots only");
            reqwest::Client::new()
        });
        Self { base: base.trim_end_matches('/').to_string(), token, http }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub(crate) fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self.http.request(method, format!("{}/api/v1{path}", self.base));
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.send(self.request(reqwest::Method::GET, path)).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value> {
        self.send(self.request(reqwest::Method::POST, path).json(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Result<Value> {
        self.send(self.request(reqwest::Method::PUT, path).json(body)).await
    }

    pub async fn delete(&self, path: &str) -> Result<Value> {
        self.send(self.request(reqwest::Method::DELETE, path)).await
    }

    /// Uploads a signed module version, showing progress on stderr.
    pub async fn publish(&self, manifest: Vec<u8>, component: Vec<u8>, signature: String) -> Result<Value> {
        let total = component.len() as u64;
        let bar = upload_bar(total);
        let progress = bar.clone();
        let chunks: Vec<Vec<u8>> = component.chunks(64 * 1024).map(<[u8]>::to_vec).collect();
        let stream = futures::stream::iter(chunks.into_iter().map(move |chunk| {
            progress.inc(chunk.len() as u64);
            Ok::<_, std::io::Error>(chunk)
        }));
        let component_part = reqwest::multipart::Part::stream_with_length(reqwest::Body::wrap_stream(stream), total)
            .file_name("component.wasm")
            .mime_str("application/wasm")?;
        let form = reqwest::multipart::Form::new()
            .part("manifest", reqwest::multipart::Part::bytes(manifest))
            .part("component", component_part)
            .text("signature", signature);
        let result = self.send(self.request(reqwest::Method::POST, "/modules").multipart(form)).await;
        bar.finish_and_clear();
        result
    }

    /// Streams a file as the request body (CSV imports), showing progress on stderr.
    pub async fn upload(&self, path: &str, file: &std::path::Path) -> Result<Value> {
        use futures::TryStreamExt;
        let f = tokio::fs::File::open(file).await.with_context(|| format!("cannot read {}", file.display()))?;
        let total = f.metadata().await?.len();
        let bar = upload_bar(total);
        let progress = bar.clone();
        let stream = tokio_util::io::ReaderStream::with_capacity(f, 256 * 1024).inspect_ok(move |chunk| progress.inc(chunk.len() as u64));
        let builder = self
            .request(reqwest::Method::POST, path)
            .header(reqwest::header::CONTENT_TYPE, "text/csv")
            .header(reqwest::header::CONTENT_LENGTH, total)
            .body(reqwest::Body::wrap_stream(stream));
        let result = self.send(builder).await;
        bar.finish_and_clear();
        result
    }

    /// Streams a response body into `out`; returns the bytes written.
    pub async fn download(&self, path: &str, out: &mut (impl tokio::io::AsyncWrite + Unpin)) -> Result<u64> {
        use futures::StreamExt;
        use tokio::io::AsyncWriteExt;
        let response = self.request(reqwest::Method::GET, path).send().await.map_err(|e| self.unreachable(e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(self.refusal(response).await);
        }
        let mut written = 0;
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.context("the download broke off")?;
            out.write_all(&chunk).await?;
            written += chunk.len() as u64;
        }
        out.flush().await?;
        Ok(written)
    }

    pub(crate) async fn send<T: DeserializeOwned>(&self, builder: reqwest::RequestBuilder) -> Result<T> {
        let response = builder.send().await.map_err(|e| self.unreachable(e))?;
        if response.status().is_success() {
            // An empty answer (204 No Content) reads as JSON null.
            let body = response.bytes().await?;
            return Ok(if body.is_empty() { serde_json::from_value(Value::Null)? } else { serde_json::from_slice(&body)? });
        }
        Err(self.refusal(response).await)
    }

    /// A request that never got an answer, with what to check.
    fn unreachable(&self, error: reqwest::Error) -> anyhow::Error {
        let mut cause: &dyn std::error::Error = &error;
        while let Some(source) = cause.source() {
            cause = source;
        }
        let message = if error.is_connect() {
            format!("no host is answering at {} ({cause}): start one with `nukisashi serve`, or point at the right one with --server or NUKISASHI_SERVER", self.base)
        } else {
            format!("the request to {} failed: {cause}", self.base)
        };
        Unreachable(message).into()
    }

    /// The host's refusal as a sentence: its problem detail, and for a missing or expired
    /// token what to do about it.
    pub(crate) async fn refusal(&self, response: reqwest::Response) -> anyhow::Error {
        let status = response.status();
        let problem: Value = response.json().await.unwrap_or_default();
        let detail = problem["detail"].as_str().unwrap_or("the host refused the request");
        let hint = match (status.as_u16(), &self.token) {
            (401, None) => {
                "\nthis needs a token: set NUKISASHI_TOKEN (or pass --token); on the host's machine `nukisashi token mint --role operator` prints one"
            }
            (401, Some(_)) if detail.contains("expired") => {
                "\nmint a fresh one with `nukisashi token mint` (same --role and --lg-code) and set NUKISASHI_TOKEN to it"
            }
            _ => "",
        };
        anyhow::anyhow!("{detail} ({status}){hint}")
    }
}

pub(crate) fn upload_bar(total: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template("uploading {bytes}/{total_bytes} [{bar:40}] {bytes_per_sec}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar
}
