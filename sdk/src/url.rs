//! Percent-decoding for paths, query strings and form bodies.

/// Decodes `%XX` escapes (and `+` as space when `plus_as_space`); invalid escapes are kept
/// literally, invalid UTF-8 is replaced.
pub(crate) fn decode(input: &str, plus_as_space: bool) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push(h * 16 + l);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b'+' if plus_as_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Decodes one path segment strictly: every `%` starts a two-hex-digit escape and the
/// result is UTF-8, or `None`.
pub(crate) fn decode_segment(input: &str) -> Option<String> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let high = hex(*bytes.get(i + 1)?)?;
            let low = hex(*bytes.get(i + 2)?)?;
            out.push(high * 16 + low);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Parses `a=1&b=%E3%81%82` into decoded pairs, in order.
/// Percent-encodes a query value: every byte outside `A–Z a–z 0–9 - . _ ~ /`.
pub(crate) fn encode_component(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    for b in input.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub(crate) fn parse_pairs(input: &str) -> Vec<(String, String)> {
    input
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k, true), decode(v, true))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_utf8_escapes_and_plus() {
        assert_eq!(decode("%E3%81%82+b", true), "あ b");
        assert_eq!(decode("%E3%81%82+b", false), "あ+b");
        assert_eq!(decode("100%", false), "100%");
        assert_eq!(decode("%zz", false), "%zz");
    }

    #[test]
    fn encodes_what_a_query_value_cannot_hold() {
        assert_eq!(encode_component("/donations?year=2026&x=千"), "/donations%3Fyear%3D2026%26x%3D%E5%8D%83");
        assert_eq!(decode(&encode_component("/a b?c=d&e"), false), "/a b?c=d&e");
    }

    #[test]
    fn parses_pairs() {
        assert_eq!(
            parse_pairs("a=1&name=%E5%B1%B1%E7%94%B0&flag"),
            vec![("a".into(), "1".into()), ("name".into(), "山田".into()), ("flag".into(), "".into())]
        );
    }
}
