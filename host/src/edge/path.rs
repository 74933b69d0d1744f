//! The one canonical form of a request path.
//!
//! The edge decodes a request's path exactly once, here. What it cannot make unambiguous
//! is refused: an empty segment (`//`), a `.` or `..` segment (also as `%2e`), an escape
//! that is not two hex digits, an escape that decodes to `/`, `\` or invalid UTF-8
//! (overlong forms included), a control character, a `%` left after decoding (double
//! encoding), and paths longer than [`MAX_PATH_BYTES`] or deeper than [`MAX_SEGMENTS`].
//! One trailing `/` is dropped (`/staff/` is `/staff`).
//!
//! A [`ModulePath`] can only be built by [`ModulePath::parse`], so holding one means the
//! path was checked. The route's auth level is decided on its decoded segments, and the
//! module receives [`ModulePath::as_str`]: the same segments re-encoded canonically (every
//! byte outside `A-Z a-z 0-9 - . _ ~` as an upper-case `%XX`), which decodes back to
//! exactly the segments that were checked. There is no second form for anything after the
//! edge to interpret differently.

/// Longest module-relative path the edge accepts, in bytes as sent (→ 414).
pub const MAX_PATH_BYTES: usize = 4096;
/// Most segments a module-relative path may have.
pub const MAX_SEGMENTS: usize = 64;

/// A module-relative request path in canonical form; see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModulePath {
    encoded: String,
    segments: Vec<String>,
}

/// Why a path was refused; each says what was wrong in words a client can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path is longer than {MAX_PATH_BYTES} bytes")]
    TooLong,
    #[error("the path has more than {MAX_SEGMENTS} segments")]
    TooDeep,
    #[error("the path has an empty segment (`//`); write each `/` once")]
    EmptySegment,
    #[error("the path has a `.` or `..` segment; write the path without them")]
    DotSegment,
    #[error("`%` must be followed by two hex digits")]
    BadEscape,
    #[error("the path has an encoded `/` (`%2F`); a segment cannot contain `/`")]
    EncodedSlash,
    #[error("the path has a backslash (`\\` or `%5C`)")]
    Backslash,
    #[error("the path decodes to invalid UTF-8 (an overlong or broken escape sequence)")]
    InvalidUtf8,
    #[error("the path has a control character (such as `%00`)")]
    ControlCharacter,
    #[error("the path still has `%` after decoding (double encoding, such as `%252e`)")]
    DoubleEncoded,
}

impl ModulePath {
    /// The root, `/`.
    pub fn root() -> Self {
        Self { encoded: "/".into(), segments: Vec::new() }
    }

    /// Checks and decodes a path as it appears in a request URI (percent-encoded ASCII,
    /// starting with `/`; an empty string is the root).
    pub fn parse(raw: &str) -> Result<Self, PathError> {
        if raw.len() > MAX_PATH_BYTES {
            return Err(PathError::TooLong);
        }
        let raw = raw.strip_prefix('/').unwrap_or(raw);
        // One trailing slash is dropped; the root stays the root.
        let raw = raw.strip_suffix('/').unwrap_or(raw);
        if raw.is_empty() {
            return Ok(Self::root());
        }
        let mut segments = Vec::new();
        for segment in raw.split('/') {
            if segments.len() == MAX_SEGMENTS {
                return Err(PathError::TooDeep);
            }
            segments.push(decode_segment(segment)?);
        }
        let mut encoded = String::with_capacity(raw.len() + 1);
        for segment in &segments {
            encoded.push('/');
            encode_segment(segment, &mut encoded);
        }
        Ok(Self { encoded, segments })
    }

    /// The canonical encoded form the module receives.
    pub fn as_str(&self) -> &str {
        &self.encoded
    }

    /// The decoded segments the route's auth level is decided on.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// Whether this path is `prefix` or lies under it, segment by segment.
    pub fn starts_with(&self, prefix: &[&str]) -> bool {
        prefix.len() <= self.segments.len() && prefix.iter().zip(&self.segments).all(|(p, s)| *p == s)
    }
}

impl std::fmt::Display for ModulePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.encoded)
    }
}

fn decode_segment(raw: &str) -> Result<String, PathError> {
    if raw.is_empty() {
        return Err(PathError::EmptySegment);
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let byte = match (bytes.get(i + 1).and_then(|&b| hex(b)), bytes.get(i + 2).and_then(|&b| hex(b))) {
                    (Some(high), Some(low)) => high << 4 | low,
                    _ => return Err(PathError::BadEscape),
                };
                match byte {
                    b'/' => return Err(PathError::EncodedSlash),
                    b'\\' => return Err(PathError::Backslash),
                    _ => out.push(byte),
                }
                i += 3;
            }
            b'\\' => return Err(PathError::Backslash),
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    let text = String::from_utf8(out).map_err(|_| PathError::InvalidUtf8)?;
    if text.chars().any(char::is_control) {
        return Err(PathError::ControlCharacter);
    }
    if text.contains('%') {
        return Err(PathError::DoubleEncoded);
    }
    if text == "." || text == ".." {
        return Err(PathError::DotSegment);
    }
    Ok(text)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn encode_segment(segment: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in segment.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
}

/// Checks a route prefix as a manifest declares it (decoded text, e.g. `/staff` or
/// `/申請`), by the same rules as a request path; returns its segments.
pub fn declared_segments(path: &str) -> Result<Vec<String>, String> {
    if !path.starts_with('/') {
        return Err(format!("route path `{path}` must start with `/`"));
    }
    let encoded: String = path
        .split('/')
        .map(|segment| {
            let mut out = String::new();
            encode_segment(segment, &mut out);
            out
        })
        .collect::<Vec<_>>()
        .join("/");
    ModulePath::parse(&encoded)
        .map(|p| p.segments)
        .map_err(|e| format!("route path `{path}` is not canonical: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> (String, Vec<String>) {
        let p = ModulePath::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
        (p.as_str().to_string(), p.segments().to_vec())
    }

    fn refused(raw: &str) -> PathError {
        ModulePath::parse(raw).expect_err(raw)
    }

    #[test]
    fn canonical_paths_decode_once_and_re_encode() {
        assert_eq!(ok(""), ("/".into(), vec![]));
        assert_eq!(ok("/"), ("/".into(), vec![]));
        assert_eq!(ok("/staff/"), ("/staff".into(), vec!["staff".into()]));
        assert_eq!(ok("/%73taff/onestop"), ("/staff/onestop".into(), vec!["staff".into(), "onestop".into()]));
        assert_eq!(ok("/entries/%e3%81%82"), ("/entries/%E3%81%82".into(), vec!["entries".into(), "あ".into()]));
        assert_eq!(ok("/a+b/c%20d/..."), ("/a%2Bb/c%20d/...".into(), vec!["a+b".into(), "c d".into(), "...".into()]));
    }

    #[test]
    fn ambiguous_paths_are_refused_with_the_reason() {
        assert_eq!(refused("//staff"), PathError::EmptySegment);
        assert_eq!(refused("/staff//onestop"), PathError::EmptySegment);
        assert_eq!(refused("/staff//"), PathError::EmptySegment);
        assert_eq!(refused("/./staff"), PathError::DotSegment);
        assert_eq!(refused("/x/../staff"), PathError::DotSegment);
        assert_eq!(refused("/%2e%2e/staff"), PathError::DotSegment);
        assert_eq!(refused("/.%2E/staff"), PathError::DotSegment);
        assert_eq!(refused("/x%2fstaff"), PathError::EncodedSlash);
        assert_eq!(refused("/x%2Fstaff"), PathError::EncodedSlash);
        assert_eq!(refused("/x%5cstaff"), PathError::Backslash);
        assert_eq!(refused("/x\\staff"), PathError::Backslash);
        assert_eq!(refused("/staff%00"), PathError::ControlCharacter);
        assert_eq!(refused("/staff%0a"), PathError::ControlCharacter);
        assert_eq!(refused("/staff%7f"), PathError::ControlCharacter);
        assert_eq!(refused("/staff%c2%85"), PathError::ControlCharacter);
        assert_eq!(refused("/%c0%ae%c0%ae/staff"), PathError::InvalidUtf8);
        assert_eq!(refused("/%ed%a0%80"), PathError::InvalidUtf8);
        assert_eq!(refused("/%e3%81"), PathError::InvalidUtf8);
        assert_eq!(refused("/%252e%252e/staff"), PathError::DoubleEncoded);
        assert_eq!(refused("/%zz"), PathError::BadEscape);
        assert_eq!(refused("/%4"), PathError::BadEscape);
        assert_eq!(refused(&format!("/{}", "a".repeat(MAX_PATH_BYTES))), PathError::TooLong);
        assert_eq!(refused(&"/a".repeat(MAX_SEGMENTS + 1)), PathError::TooDeep);
    }

    #[test]
    fn prefixes_match_whole_segments() {
        let p = ModulePath::parse("/staff/onestop").unwrap();
        assert!(p.starts_with(&[]));
        assert!(p.starts_with(&["staff"]));
        assert!(p.starts_with(&["staff", "onestop"]));
        assert!(!p.starts_with(&["sta"]));
        assert!(!ModulePath::parse("/staffroom").unwrap().starts_with(&["staff"]));
    }

    #[test]
    fn declared_routes_follow_the_same_rules() {
        assert_eq!(declared_segments("/").unwrap(), Vec::<String>::new());
        assert_eq!(declared_segments("/staff/").unwrap(), vec!["staff".to_string()]);
        assert_eq!(declared_segments("/申請").unwrap(), vec!["申請".to_string()]);
        assert!(declared_segments("staff").unwrap_err().contains("must start with"));
        assert!(declared_segments("//staff").unwrap_err().contains("empty segment"));
        assert!(declared_segments("/a/../staff").unwrap_err().contains("`.` or `..`"));
        assert!(declared_segments("/100%").unwrap_err().contains("double encoding"));
    }

    proptest::proptest! {
        /// Whatever the client sends, an accepted path's canonical form parses to itself:
        /// the module, decoding what it receives once, gets the segments that were checked.
        #[test]
        fn the_canonical_form_is_a_fixed_point(raw in "(/([a-zA-Z0-9._~%/\\\\+-]|%[0-9a-fA-F]{2}|%2[eEfF]|%5[cC]|%00){0,12}){0,6}") {
            if let Ok(path) = ModulePath::parse(&raw) {
                let again = ModulePath::parse(path.as_str()).expect("a canonical path is accepted");
                proptest::prop_assert_eq!(&again, &path);
                for segment in path.segments() {
                    proptest::prop_assert!(!segment.is_empty() && segment != "." && segment != "..");
                    proptest::prop_assert!(!segment.contains(['/', '\\', '%']));
                }
            }
        }
    }
}
