//! The standard CSV layouts for bulk import and export (in the spirit of the 中間標準レイアウト):
//! one header row with these exact column names, then one record per row. Dates are
//! `YYYY-MM-DD`; money is integer yen without separators. Text is taken byte for byte:
//! 外字 as private-use characters and IVS sequences are kept, nothing is normalised.
//!
//! Residents (`residents.csv`):
//!
//! | column | content |
//! | --- | --- |
//! | 宛名番号 | 1–15 digits, unique in the municipality |
//! | 団体内統合宛名番号 | 1–15 digits |
//! | 世帯番号 | 1–15 digits |
//! | 氏名 | name in kanji, up to 100 characters |
//! | 氏名カナ | full-width katakana, spaces allowed |
//! | 生年月日 | date |
//! | 性別 | `1` 男, `2` 女, `9` 不明 (the words are accepted too) |
//! | 続柄 | e.g. 世帯主, 妻, 子 |
//! | 郵便番号 | 7 digits (`100-0001` accepted) |
//! | 住所 | address |
//! | 住民となった日 | date |
//! | 状態 | 住民, 転出 or 死亡 |
//! | 異動日 | date of the last change, or empty |
//! | 異動事由 | reason of the last change, or empty |
//! | 個人番号 | マイナンバー (12 digits, check digit verified), or empty |
//! | 住民票コード | 11 digits, or empty |
//!
//! Tax summaries (`tax.csv`): 宛名番号, 年度 (the fiscal year, e.g. `2025`), 総所得金額等,
//! 所得割額.

use super::{IdentityNumbers, Resident, Sex, Status, TaxSummary, valid_individual_number};
use chrono::NaiveDate;

pub const RESIDENT_COLUMNS: [&str; 16] = [
    "宛名番号",
    "団体内統合宛名番号",
    "世帯番号",
    "氏名",
    "氏名カナ",
    "生年月日",
    "性別",
    "続柄",
    "郵便番号",
    "住所",
    "住民となった日",
    "状態",
    "異動日",
    "異動事由",
    "個人番号",
    "住民票コード",
];

pub const TAX_COLUMNS: [&str; 4] = ["宛名番号", "年度", "総所得金額等", "所得割額"];

/// Which layout a file is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Residents,
    Tax,
}

impl Layout {
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            Layout::Residents => &RESIDENT_COLUMNS,
            Layout::Tax => &TAX_COLUMNS,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Layout::Residents => "residents",
            Layout::Tax => "tax",
        }
    }

    /// Checks a header row (a UTF-8 BOM on the first column is ignored).
    pub fn check_header(self, header: &[&str]) -> Result<(), String> {
        let expected = self.columns();
        let got: Vec<&str> = header.iter().enumerate().map(|(i, h)| if i == 0 { h.trim_start_matches('\u{feff}') } else { h }).collect();
        if got.as_slice() == expected {
            return Ok(());
        }
        if got.len() != expected.len() {
            return Err(format!(
                "the header has {} columns; the {} layout has {}: {}",
                got.len(),
                self.name(),
                expected.len(),
                expected.join(",")
            ));
        }
        let (i, (g, e)) = got.iter().zip(expected).enumerate().find(|(_, (g, e))| g != e).expect("differs somewhere");
        Err(format!("column {} of the header is `{g}`; the {} layout has `{e}` there", i + 1, self.name()))
    }
}

/// One good row of the residents layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResidentRow {
    pub resident: Resident,
    pub numbers: IdentityNumbers,
}

fn digits(field: &str, value: &str, max: usize) -> Result<String, String> {
    if value.is_empty() || value.len() > max || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{field} must be 1–{max} digits, not `{value}`"));
    }
    Ok(value.to_string())
}

fn date(field: &str, value: &str) -> Result<String, String> {
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .ok()
        .filter(|d| d.format("%Y-%m-%d").to_string() == value)
        .map(|_| value.to_string())
        .ok_or_else(|| format!("{field} must be a date written YYYY-MM-DD, not `{value}`"))
}

fn text(field: &str, value: &str, max_chars: usize) -> Result<String, String> {
    if value.trim().is_empty() {
        return Err(format!("{field} is empty"));
    }
    if value.chars().count() > max_chars {
        return Err(format!("{field} is longer than {max_chars} characters"));
    }
    if value.chars().any(|c| c.is_control()) {
        return Err(format!("{field} contains a control character"));
    }
    if value.contains('\u{FFFD}') {
        return Err(format!("{field} contains bytes that are not valid in the file's encoding"));
    }
    Ok(value.to_string())
}

fn optional<T>(value: &str, parse: impl FnOnce(&str) -> Result<T, String>) -> Result<Option<T>, String> {
    if value.is_empty() { Ok(None) } else { parse(value).map(Some) }
}

pub fn sex_code(sex: Sex) -> &'static str {
    match sex {
        Sex::Male => "1",
        Sex::Female => "2",
        Sex::Unspecified => "9",
    }
}

pub fn status_word(status: Status) -> &'static str {
    match status {
        Status::Resident => "住民",
        Status::MovedOut => "転出",
        Status::Deceased => "死亡",
    }
}

/// Parses one data row of the residents layout; the error says which column and why.
pub fn parse_resident(fields: &[&str]) -> Result<ResidentRow, String> {
    if fields.len() != RESIDENT_COLUMNS.len() {
        return Err(format!("the row has {} columns; the residents layout has {}", fields.len(), RESIDENT_COLUMNS.len()));
    }
    let f = |i: usize| fields[i];
    let sex = match f(6) {
        "1" | "男" => Sex::Male,
        "2" | "女" => Sex::Female,
        "9" | "不明" => Sex::Unspecified,
        other => return Err(format!("性別 must be 1 (男), 2 (女) or 9 (不明), not `{other}`")),
    };
    let status = match f(11) {
        "住民" => Status::Resident,
        "転出" => Status::MovedOut,
        "死亡" => Status::Deceased,
        other => return Err(format!("状態 must be 住民, 転出 or 死亡, not `{other}`")),
    };
    let postal: String = f(8).chars().filter(|&c| c != '-').collect();
    if postal.len() != 7 || !postal.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("郵便番号 must be 7 digits, not `{}`", f(8)));
    }
    let name_kana = text("氏名カナ", f(4), 100)?;
    if !super::is_kana_name(&name_kana) {
        return Err(format!("氏名カナ must be full-width katakana, not `{name_kana}`"));
    }
    let status_changed_on = optional(f(12), |v| date("異動日", v))?;
    if status != Status::Resident && status_changed_on.is_none() {
        return Err(format!("状態 {} needs 異動日", f(11)));
    }
    let individual_number = optional(f(14), |v| {
        if valid_individual_number(v) { Ok(v.to_string()) } else { Err(format!("個人番号 `{v}` is not a valid マイナンバー (12 digits with a check digit)")) }
    })?;
    let resident_record_code = optional(f(15), |v| {
        if v.len() == 11 && v.bytes().all(|b| b.is_ascii_digit()) { Ok(v.to_string()) } else { Err(format!("住民票コード must be 11 digits, not `{v}`")) }
    })?;
    let resident = Resident {
        addressee_number: digits("宛名番号", f(0), 15)?,
        integrated_number: digits("団体内統合宛名番号", f(1), 15)?,
        household_number: digits("世帯番号", f(2), 15)?,
        name: text("氏名", f(3), 100)?,
        name_kana,
        birth_date: date("生年月日", f(5))?,
        sex,
        relationship: text("続柄", f(7), 20)?,
        postal_code: postal,
        address: text("住所", f(9), 200)?,
        resident_since: date("住民となった日", f(10))?,
        status,
        status_changed_on,
        status_reason: optional(f(13), |v| text("異動事由", v, 50))?,
    };
    Ok(ResidentRow { resident, numbers: IdentityNumbers { individual_number, resident_record_code } })
}

/// The fields of one residents row, for export; parsing them gives the row back.
pub fn resident_fields(r: &Resident, n: &IdentityNumbers) -> [String; 16] {
    [
        r.addressee_number.clone(),
        r.integrated_number.clone(),
        r.household_number.clone(),
        r.name.clone(),
        r.name_kana.clone(),
        r.birth_date.clone(),
        sex_code(r.sex).to_string(),
        r.relationship.clone(),
        r.postal_code.clone(),
        r.address.clone(),
        r.resident_since.clone(),
        status_word(r.status).to_string(),
        r.status_changed_on.clone().unwrap_or_default(),
        r.status_reason.clone().unwrap_or_default(),
        n.individual_number.clone().unwrap_or_default(),
        n.resident_record_code.clone().unwrap_or_default(),
    ]
}

pub fn parse_tax(fields: &[&str]) -> Result<TaxSummary, String> {
    if fields.len() != TAX_COLUMNS.len() {
        return Err(format!("the row has {} columns; the tax layout has {}", fields.len(), TAX_COLUMNS.len()));
    }
    let year: i64 = fields[1]
        .parse()
        .ok()
        .filter(|y| (1990..=2100).contains(y))
        .ok_or_else(|| format!("年度 must be a year such as 2025, not `{}`", fields[1]))?;
    let yen = |field: &str, v: &str| -> Result<i64, String> {
        v.parse::<i64>()
            .ok()
            .filter(|n| *n >= 0 && v.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| format!("{field} must be whole yen (digits only), not `{v}`"))
    };
    Ok(TaxSummary {
        addressee_number: digits("宛名番号", fields[0], 15)?,
        fiscal_year: year,
        total_income: yen("総所得金額等", fields[2])?,
        income_based_tax: yen("所得割額", fields[3])?,
    })
}

pub fn tax_fields(t: &TaxSummary) -> [String; 4] {
    [t.addressee_number.clone(), t.fiscal_year.to_string(), t.total_income.to_string(), t.income_based_tax.to_string()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> Vec<&'static str> {
        vec![
            "1001", "5001", "2001", "髙橋\u{E000}子", "タカハシ　ヨシコ", "1985-04-02", "2", "世帯主", "100-0001",
            "東京都千代田区千代田1-1", "2010-04-01", "住民", "", "", "123456789018", "12345678901",
        ]
    }

    #[test]
    fn a_good_row_round_trips_through_export_fields() {
        let parsed = parse_resident(&row()).unwrap();
        assert_eq!(parsed.resident.postal_code, "1000001");
        assert_eq!(parsed.resident.name, "髙橋\u{E000}子");
        let fields = resident_fields(&parsed.resident, &parsed.numbers);
        let refs: Vec<&str> = fields.iter().map(String::as_str).collect();
        assert_eq!(parse_resident(&refs).unwrap(), parsed);
    }

    #[test]
    fn bad_fields_are_named() {
        let cases: [(usize, &str, &str); 8] = [
            (0, "12a", "宛名番号"),
            (5, "1985-02-30", "生年月日"),
            (6, "3", "性別"),
            (4, "たかはし", "氏名カナ"),
            (8, "12345", "郵便番号"),
            (11, "不在", "状態"),
            (14, "123456789019", "個人番号"),
            (3, "", "氏名"),
        ];
        for (column, value, named) in cases {
            let mut r = row();
            r[column] = value;
            let e = parse_resident(&r).unwrap_err();
            assert!(e.contains(named), "{value} in column {column}: {e}");
        }
        let mut moved = row();
        moved[11] = "転出";
        assert!(parse_resident(&moved).unwrap_err().contains("異動日"));
    }

    #[test]
    fn headers_are_checked_by_name() {
        assert!(Layout::Tax.check_header(&["\u{feff}宛名番号", "年度", "総所得金額等", "所得割額"]).is_ok());
        let e = Layout::Tax.check_header(&["宛名番号", "年", "総所得金額等", "所得割額"]).unwrap_err();
        assert!(e.contains("column 2"), "{e}");
        assert!(Layout::Residents.check_header(&["宛名番号"]).unwrap_err().contains("16"));
    }

    #[test]
    fn tax_rows_take_whole_yen() {
        assert_eq!(parse_tax(&["1001", "2025", "4500000", "245000"]).unwrap().income_based_tax, 245000);
        assert!(parse_tax(&["1001", "2025", "4,500,000", "245000"]).unwrap_err().contains("総所得金額等"));
        assert!(parse_tax(&["1001", "25", "1", "1"]).unwrap_err().contains("年度"));
    }
}
