//! `multipart/form-data` (RFC 7578), as a browser sends a form with a file input: each part
//! is a text field or a file with its name and type. Parsed from the whole body, which the
//! host has already bounded in size.

/// One part of a multipart body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub name: String,
    /// The file's name, for a file input (empty when no file was chosen).
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub data: Vec<u8>,
}

/// The boundary of a `multipart/form-data` content type, if it is one.
pub(crate) fn boundary(content_type: &str) -> Option<String> {
    let mut pieces = content_type.split(';');
    if !pieces.next()?.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    pieces
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim_matches('"').to_string())
        .filter(|b| !b.is_empty() && b.len() <= 70)
}

/// The parts of `body`, or why it is not a multipart body with this boundary.
pub(crate) fn parse(body: &[u8], boundary: &str) -> Result<Vec<Part>, String> {
    let delimiter = format!("--{boundary}").into_bytes();
    let mut parts = Vec::new();
    let mut rest = match find(body, &delimiter) {
        Some(at) => &body[at + delimiter.len()..],
        None => return Err("the body has no multipart boundary".into()),
    };
    loop {
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        rest = rest.strip_prefix(b"\r\n").ok_or("a multipart boundary is not followed by a line break")?;
        let end = find(rest, &[b"\r\n".as_slice(), &delimiter].concat()).ok_or("a multipart part is not closed by a boundary")?;
        let (part, after) = (&rest[..end], &rest[end + 2 + delimiter.len()..]);
        let head_end = find(part, b"\r\n\r\n").ok_or("a multipart part has no headers")?;
        let head = std::str::from_utf8(&part[..head_end]).map_err(|_| "multipart headers are not UTF-8")?;
        let mut name = None;
        let mut filename = None;
        let mut content_type = None;
        for line in head.split("\r\n") {
            let Some((header, value)) = line.split_once(':') else { continue };
            if header.trim().eq_ignore_ascii_case("content-disposition") {
                for param in value.split(';').skip(1) {
                    if let Some((k, v)) = param.trim().split_once('=') {
                        let v = v.trim().trim_matches('"').to_string();
                        match k.trim() {
                            "name" => name = Some(v),
                            "filename" => filename = Some(v),
                            _ => {}
                        }
                    }
                }
            } else if header.trim().eq_ignore_ascii_case("content-type") {
                content_type = Some(value.trim().to_string());
            }
        }
        let name = name.ok_or("a multipart part has no field name")?;
        parts.push(Part { name, filename, content_type, data: part[head_end + 4..].to_vec() });
        rest = after;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_a_browser_sends() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n\xe5\xb1\xb1\xe7\x94\xb0\r\n--XyZ\r\nContent-Disposition: form-data; name=\"doc\"; filename=\"a.pdf\"\r\nContent-Type: application/pdf\r\n\r\n%PDF\r\n\x00\x01\r\n--XyZ\r\nContent-Disposition: form-data; name=\"none\"; filename=\"\"\r\nContent-Type: application/octet-stream\r\n\r\n\r\n--XyZ--\r\n";
        let parts = parse(body, "XyZ").unwrap();
        assert_eq!(parts.len(), 3);
        assert_eq!((parts[0].name.as_str(), parts[0].data.as_slice()), ("name", "山田".as_bytes()));
        assert_eq!(parts[1].filename.as_deref(), Some("a.pdf"));
        assert_eq!(parts[1].content_type.as_deref(), Some("application/pdf"));
        assert_eq!(parts[1].data, b"%PDF\r\n\x00\x01");
        assert_eq!(parts[2].filename.as_deref(), Some(""));
        assert!(parts[2].data.is_empty());
        assert_eq!(boundary("multipart/form-data; boundary=XyZ").as_deref(), Some("XyZ"));
        assert_eq!(boundary("application/json"), None);
        assert!(parse(b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nno end", "XyZ").is_err());
    }
}
