//! What a vendor may see of their module at work: its log lines and each request's outcome
//! (status, time, the error if it failed), kept in memory per module on this host, and
//! streamed to `nukisashi dev`.
//!
//! Vendors are not the municipality's data processors for what residents enter, so what
//! reaches them is kept to what the module itself wrote and what the host decided: a
//! request is recorded by its declared route (the manifest's prefix, never the path, which
//! can carry identifiers), and never with the caller, a body or a query string; log lines
//! and errors are redacted when written (runs of four or more digits — 宛名番号, 個人番号,
//! phone numbers, postal codes — also across `-`, `−`, `.`, `/` and spaces between them,
//! and e-mail addresses are masked). Names and other free text a module chooses to log are
//! not recognised: vendors must not log them. Entries
//! live only in this process's memory: the newest [`KEPT_PER_MODULE`] per module, lost on
//! restart, and each replica keeps its own.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Entries kept per module (older ones are dropped first).
pub const KEPT_PER_MODULE: usize = 500;
/// Entries a slow `nukisashi dev` watcher may fall behind before it misses some.
const STREAM_BACKLOG: usize = 1024;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    /// RFC 3339, UTC.
    pub at: String,
    pub module: String,
    pub version: String,
    pub lg_code: String,
    pub request_id: String,
    #[serde(flatten)]
    pub what: What,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum What {
    /// A line the module wrote with `nukisashi:platform/log`.
    Log { level: String, message: String },
    /// A request the module answered (or failed).
    /// `route` is the manifest's route prefix the request matched.
    Request { method: String, route: String, status: u16, ms: u64, error: Option<String> },
}

impl Entry {
    /// One line for a terminal: `time lg_code module@version` and what happened.
    pub fn line(&self) -> String {
        let time = self.at.get(11..23).unwrap_or(&self.at);
        let what = match &self.what {
            What::Log { level, message } => format!("{level:<5} {message}"),
            What::Request { method, route, status, ms, error: None } => format!("{method} {route} → {status} in {ms} ms"),
            What::Request { method, route, status, ms, error: Some(error) } => format!("{method} {route} → {status} in {ms} ms: {error}"),
        };
        format!("{time} {} {}@{} {what}", self.lg_code, self.module, self.version)
    }
}

/// Where an entry comes from, as the request path knows it.
pub struct Source<'a> {
    pub module: &'a str,
    pub version: &'a str,
    pub lg_code: &'a str,
    pub request_id: &'a str,
}

pub struct ModuleLogs {
    kept: Mutex<HashMap<String, VecDeque<Entry>>>,
    stream: tokio::sync::broadcast::Sender<Entry>,
}

impl Default for ModuleLogs {
    fn default() -> Self {
        Self { kept: Default::default(), stream: tokio::sync::broadcast::channel(STREAM_BACKLOG).0 }
    }
}

impl ModuleLogs {
    pub fn log(&self, source: Source<'_>, level: &str, message: &str) {
        self.push(source, What::Log { level: level.to_string(), message: redact(message) });
    }

    pub fn request(&self, source: Source<'_>, method: &str, route: &str, status: u16, elapsed: std::time::Duration, error: Option<String>) {
        let what = What::Request {
            method: method.to_string(),
            route: route.to_string(),
            status,
            ms: elapsed.as_millis() as u64,
            error: error.as_deref().map(redact),
        };
        self.push(source, what);
    }

    fn push(&self, source: Source<'_>, what: What) {
        let entry = Entry {
            at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            module: source.module.to_string(),
            version: source.version.to_string(),
            lg_code: source.lg_code.to_string(),
            request_id: source.request_id.to_string(),
            what,
        };
        // Nobody listening is not an error.
        let _ = self.stream.send(entry.clone());
        let mut kept = self.kept.lock().expect("module logs");
        let entries = kept.entry(entry.module.clone()).or_default();
        if entries.len() == KEPT_PER_MODULE {
            entries.pop_front();
        }
        entries.push_back(entry);
    }

    /// The newest `limit` entries of `module`, oldest first.
    pub fn recent(&self, module: &str, limit: usize) -> Vec<Entry> {
        let kept = self.kept.lock().expect("module logs");
        let Some(entries) = kept.get(module) else { return Vec::new() };
        entries.iter().skip(entries.len().saturating_sub(limit)).cloned().collect()
    }

    /// Every entry from now on, of every module.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Entry> {
        self.stream.subscribe()
    }
}

/// `text` with every run of four or more ASCII or full-width digits (single hyphens, dashes,
/// dots, slashes, brackets and spaces between digits count as part of the run) replaced by
/// `####`, and every e-mail address (`@` or `＠`) by `***@***`.
pub fn redact(text: &str) -> String {
    let masked_emails: String = text.split_inclusive(char::is_whitespace).map(mask_email).collect();
    mask_digit_runs(&masked_emails)
}

fn mask_email(word: &str) -> String {
    let trimmed = word.trim_end();
    match trimmed.split_once(['@', '＠']) {
        Some((local, domain)) if !local.is_empty() && domain.contains('.') => format!("***@***{}", &word[trimmed.len()..]),
        _ => word.to_string(),
    }
}

fn is_digit(c: char) -> bool {
    c.is_ascii_digit() || ('０'..='９').contains(&c)
}

fn mask_digit_runs(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if !is_digit(chars[i]) {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        // A run: digits, with single separators between them.
        let (start, mut end, mut digits) = (i, i, 0);
        let mut j = i;
        while j < chars.len() {
            if is_digit(chars[j]) {
                digits += 1;
                j += 1;
                end = j;
            } else if matches!(chars[j], '-' | ' ' | '　' | '－' | 'ー' | '−' | '‐' | '–' | '―' | '/' | '.' | '(' | ')' | '（' | '）') && j + 1 < chars.len() && is_digit(chars[j + 1]) {
                j += 1;
            } else {
                break;
            }
        }
        if digits >= 4 {
            out.push_str("####");
        } else {
            out.extend(&chars[start..end]);
        }
        i = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_that_identify_people_are_masked() {
        assert_eq!(redact("宛名番号 123456789012 を更新"), "宛名番号 #### を更新");
        assert_eq!(redact("tel 03-3264-2111, 〒102-8688"), "tel ####, 〒####");
        assert_eq!(redact("個人番号１２３４５６７８９０１２"), "個人番号####");
        assert_eq!(redact("born 1990/04/01"), "born ####");
        assert_eq!(redact("/applications/20261206-0042"), "/applications/####");
        assert_eq!(redact("〒102−8688 tel (03)3264.2111, 090 1234 5678"), "〒#### tel (####, ####");
    }

    #[test]
    fn small_numbers_and_words_stay() {
        assert_eq!(redact("3 entries, page 12 of 250"), "3 entries, page 12 of 250");
        assert_eq!(redact("GET /entries?limit=100"), "GET /entries?limit=100");
    }

    #[test]
    fn email_addresses_are_masked() {
        assert_eq!(redact("sent to taro.yamada@example.jp today"), "sent to ***@*** today");
        assert_eq!(redact("@mention stays"), "@mention stays");
        assert_eq!(redact("宛先 taro＠example.jp"), "宛先 ***@***");
    }

    #[test]
    fn only_the_newest_entries_are_kept_per_module() {
        let logs = ModuleLogs::default();
        for n in 0..KEPT_PER_MODULE + 3 {
            let source = Source { module: "guestbook", version: "1.0.0", lg_code: "131016", request_id: "r" };
            logs.log(source, "info", &format!("line {}", n % 1000));
        }
        logs.log(Source { module: "other", version: "1.0.0", lg_code: "131016", request_id: "r" }, "info", "x");
        let kept = logs.recent("guestbook", usize::MAX);
        assert_eq!(kept.len(), KEPT_PER_MODULE);
        assert!(matches!(&kept[0].what, What::Log { message, .. } if message == "line 3"));
        assert_eq!(logs.recent("guestbook", 2).len(), 2);
        assert_eq!(logs.recent("other", 10).len(), 1);
    }
}
