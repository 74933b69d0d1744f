//! Export of the standard layouts, streamed page by page, so a municipality can take its
//! data elsewhere. UTF-8 by default; Shift_JIS (CP932) on request, with private-use
//! characters written back to the user-defined area (F040–F9FC) they were imported from.

use super::import::Encoding;
use super::layout::{Layout, resident_fields, tax_fields};
use crate::store::Db;
use bytes::Bytes;
use futures::Stream;

/// Rows read from the database per page.
const PAGE_ROWS: u32 = 1000;

/// A character the chosen encoding cannot carry, and whose record holds it.
#[derive(Debug, thiserror::Error)]
#[error("宛名番号 {addressee_number} holds `{character}` (U+{code:04X}), which Shift_JIS cannot represent; export as UTF-8 instead")]
pub struct Unencodable {
    pub addressee_number: String,
    pub character: char,
    pub code: u32,
}

/// `text` in CP932. Private-use characters map back to the user-defined area the Shift_JIS
/// decoder put them in (WHATWG: pointers 8836–10715 ↔ U+E000–U+E757).
pub fn encode_shift_jis(text: &str) -> Result<Vec<u8>, char> {
    let mut out = Vec::with_capacity(text.len());
    let mut run_start = 0;
    let flush = |run: &str, out: &mut Vec<u8>| -> Result<(), char> {
        if run.is_empty() {
            return Ok(());
        }
        let (bytes, _, had_errors) = encoding_rs::SHIFT_JIS.encode(run);
        if had_errors {
            let bad = run.chars().find(|c| encoding_rs::SHIFT_JIS.encode(&c.to_string()).2).unwrap_or('?');
            return Err(bad);
        }
        out.extend_from_slice(&bytes);
        Ok(())
    };
    for (i, c) in text.char_indices() {
        if ('\u{E000}'..='\u{E757}').contains(&c) {
            flush(&text[run_start..i], &mut out)?;
            let pointer = c as u32 - 0xE000 + 8836;
            let (lead, trail) = (pointer / 188, pointer % 188);
            out.push((lead + if lead < 0x1F { 0x81 } else { 0xC1 }) as u8);
            out.push((trail + if trail < 0x3F { 0x40 } else { 0x41 }) as u8);
            run_start = i + c.len_utf8();
        }
    }
    flush(&text[run_start..], &mut out)?;
    Ok(out)
}

fn csv_line(fields: &[String]) -> Vec<u8> {
    let mut writer = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(Vec::new());
    writer.write_record(fields).expect("writing to memory");
    writer.into_inner().expect("writing to memory")
}

fn encode(line: Vec<u8>, encoding: Encoding, addressee_number: &str) -> Result<Vec<u8>, Unencodable> {
    match encoding {
        Encoding::Utf8 => Ok(line),
        Encoding::ShiftJis => {
            let text = String::from_utf8(line).expect("csv of strings is UTF-8");
            encode_shift_jis(&text).map_err(|character| Unencodable {
                addressee_number: addressee_number.to_string(),
                character,
                code: character as u32,
            })
        }
    }
}

/// One page of the export as encoded CSV lines (with the header before the first page),
/// and where the next page starts.
async fn page(db: &Db, lg_code: &str, layout: Layout, encoding: Encoding, after: &Option<(String, i64)>) -> anyhow::Result<(Vec<u8>, Option<(String, i64)>)> {
    let mut out = Vec::new();
    let start = match after {
        None => {
            out.extend(encode(csv_line(&layout.columns().iter().map(|c| c.to_string()).collect::<Vec<_>>()), encoding, "")?);
            (String::new(), i64::MIN)
        }
        Some(a) => a.clone(),
    };
    let next = match layout {
        Layout::Residents => {
            let rows = db.residents_page(lg_code, &start.0, PAGE_ROWS).await?;
            for (r, n) in &rows {
                out.extend(encode(csv_line(&resident_fields(r, n)), encoding, &r.addressee_number)?);
            }
            (rows.len() == PAGE_ROWS as usize).then(|| (rows.last().expect("full page").0.addressee_number.clone(), 0))
        }
        Layout::Tax => {
            let rows = db.tax_page(lg_code, (&start.0, start.1), PAGE_ROWS).await?;
            for t in &rows {
                out.extend(encode(csv_line(&tax_fields(t)), encoding, &t.addressee_number)?);
            }
            (rows.len() == PAGE_ROWS as usize).then(|| {
                let last = rows.last().expect("full page");
                (last.addressee_number.clone(), last.fiscal_year)
            })
        }
    };
    Ok((out, next))
}

/// Checks before streaming that every record can be written in `encoding`, so a refusal
/// comes as an error response instead of a file cut off half-way.
pub async fn check_encodable(db: &Db, lg_code: &str, layout: Layout, encoding: Encoding) -> anyhow::Result<Result<(), Unencodable>> {
    if encoding == Encoding::Utf8 {
        return Ok(Ok(()));
    }
    let mut after = None;
    loop {
        match page(db, lg_code, layout, encoding, &after).await {
            Ok((_, None)) => return Ok(Ok(())),
            Ok((_, Some(next))) => after = Some(next),
            Err(e) => match e.downcast::<Unencodable>() {
                Ok(unencodable) => return Ok(Err(unencodable)),
                Err(other) => return Err(other),
            },
        }
    }
}

/// The whole layout as a stream of CSV chunks, one page per chunk.
pub fn stream(db: Db, lg_code: String, layout: Layout, encoding: Encoding) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send {
    // State: None = finished; Some(after) = the next page starts after `after` (None: first page).
    futures::stream::unfold(Some(None), move |state: Option<Option<(String, i64)>>| {
        let db = db.clone();
        let lg_code = lg_code.clone();
        async move {
            let after = state?;
            match page(&db, &lg_code, layout, encoding, &after).await {
                Ok((chunk, next)) => Some((Ok(Bytes::from(chunk)), next.map(Some))),
                Err(e) => Some((Err(std::io::Error::other(format!("{e:#}"))), None)),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_use_characters_go_back_to_the_user_defined_area() {
        // F040 is the first user-defined character in CP932; it decodes to U+E000.
        let (decoded, _, _) = encoding_rs::SHIFT_JIS.decode(&[0xF0, 0x40, 0x88, 0x9F, 0xF9, 0xFC]);
        assert_eq!(decoded, "\u{E000}亜\u{E757}");
        assert_eq!(encode_shift_jis(&decoded).unwrap(), vec![0xF0, 0x40, 0x88, 0x9F, 0xF9, 0xFC]);
    }

    #[test]
    fn what_shift_jis_cannot_carry_is_named() {
        // An IVS selector has no Shift_JIS form.
        assert_eq!(encode_shift_jis("葛\u{E0100}"), Err('\u{E0100}'));
        assert_eq!(encode_shift_jis("山田").unwrap(), vec![0x8E, 0x52, 0x93, 0x63]);
    }
}
