//! 全国地方公共団体コード: the 6-digit code identifying a municipality (or prefecture).
//!
//! Two digits of prefecture (01–47, JIS X 0401), three of municipality (JIS X 0402) and a
//! check digit: for digits a b c d e, `s = 6a + 5b + 4c + 3d + 2e`, `r = s mod 11`,
//! check = `(11 − r) mod 10`. The check digit only catches typos; whether a code is in the
//! official list is a separate question (the list changes with mergers).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A syntactically valid 全国地方公共団体コード.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LgCode(String);

/// Why a string is not a valid municipality code. The messages are shown to people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LgCodeError {
    #[error("a municipality code has 6 digits, `{0}` has {1} characters")]
    WrongLength(String, usize),
    #[error("a municipality code is digits only, `{0}` is not")]
    NotDigits(String),
    #[error("`{0}` names prefecture {1:02}, but prefectures are numbered 01 to 47")]
    NoSuchPrefecture(String, u8),
    #[error("`{0}` has check digit {1}, but the first five digits give {2}: probably a typo")]
    WrongCheckDigit(String, u8, u8),
}

/// Prefecture names in JIS X 0401 order (index 0 is code 01).
const PREFECTURES: [&str; 47] = [
    "北海道", "青森県", "岩手県", "宮城県", "秋田県", "山形県", "福島県", "茨城県", "栃木県", "群馬県",
    "埼玉県", "千葉県", "東京都", "神奈川県", "新潟県", "富山県", "石川県", "福井県", "山梨県", "長野県",
    "岐阜県", "静岡県", "愛知県", "三重県", "滋賀県", "京都府", "大阪府", "兵庫県", "奈良県", "和歌山県",
    "鳥取県", "島根県", "岡山県", "広島県", "山口県", "徳島県", "香川県", "愛媛県", "高知県", "福岡県",
    "佐賀県", "長崎県", "熊本県", "大分県", "宮崎県", "鹿児島県", "沖縄県",
];

/// The check digit for the first five digits of a code.
pub fn check_digit(first_five: [u8; 5]) -> u8 {
    let s: u32 = first_five.iter().zip([6u32, 5, 4, 3, 2]).map(|(&d, w)| d as u32 * w).sum();
    ((11 - s % 11) % 10) as u8
}

impl LgCode {
    pub fn parse(input: &str) -> Result<Self, LgCodeError> {
        let len = input.chars().count();
        if len != 6 {
            return Err(LgCodeError::WrongLength(input.to_string(), len));
        }
        if !input.bytes().all(|b| b.is_ascii_digit()) {
            return Err(LgCodeError::NotDigits(input.to_string()));
        }
        let d: Vec<u8> = input.bytes().map(|b| b - b'0').collect();
        let prefecture = d[0] * 10 + d[1];
        if !(1..=47).contains(&prefecture) {
            return Err(LgCodeError::NoSuchPrefecture(input.to_string(), prefecture));
        }
        let expected = check_digit([d[0], d[1], d[2], d[3], d[4]]);
        if d[5] != expected {
            return Err(LgCodeError::WrongCheckDigit(input.to_string(), d[5], expected));
        }
        Ok(Self(input.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The prefecture's name, e.g. `東京都` for `131016`.
    pub fn prefecture(&self) -> &'static str {
        let n: usize = self.0[..2].parse().expect("validated digits");
        PREFECTURES[n - 1]
    }

    /// True for a prefecture's own code (`PP000` + check digit).
    pub fn is_prefecture(&self) -> bool {
        &self.0[2..5] == "000"
    }
}

impl FromStr for LgCode {
    type Err = LgCodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for LgCode {
    type Error = LgCodeError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<LgCode> for String {
    fn from(c: LgCode) -> String {
        c.0
    }
}

impl fmt::Display for LgCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_published_examples() {
        for (code, pref) in [("131016", "東京都"), ("011002", "北海道"), ("472018", "沖縄県")] {
            let c = LgCode::parse(code).unwrap();
            assert_eq!(c.prefecture(), pref);
        }
        assert!(LgCode::parse("130001").unwrap().is_prefecture());
    }

    #[test]
    fn check_digit_matches_rule() {
        // 千代田区: 6*1+5*3+4*1+3*0+2*1 = 27, 27 mod 11 = 5, (11-5) mod 10 = 6
        assert_eq!(check_digit([1, 3, 1, 0, 1]), 6);
        // r = 0 gives (11 - 0) mod 10 = 1; r = 1 gives 0.
        assert_eq!(check_digit([0, 0, 0, 0, 0]), 1);
    }

    #[test]
    fn rejects_bad_codes_with_reasons() {
        assert!(matches!(LgCode::parse("131017"), Err(LgCodeError::WrongCheckDigit(_, 7, 6))));
        assert!(matches!(LgCode::parse("13101"), Err(LgCodeError::WrongLength(_, 5))));
        assert!(matches!(LgCode::parse("1310166"), Err(LgCodeError::WrongLength(_, 7))));
        assert!(matches!(LgCode::parse("13a016"), Err(LgCodeError::NotDigits(_))));
        assert!(matches!(LgCode::parse("１３１０１６"), Err(LgCodeError::WrongLength(..)) | Err(LgCodeError::NotDigits(_))));
        assert!(matches!(LgCode::parse("001007"), Err(LgCodeError::NoSuchPrefecture(_, 0))));
        assert!(matches!(LgCode::parse("481009"), Err(LgCodeError::NoSuchPrefecture(_, 48))));
        let msg = LgCode::parse("131017").unwrap_err().to_string();
        assert!(msg.contains("check digit 7") && msg.contains("give 6"), "{msg}");
    }
}

impl utoipa::PartialSchema for LgCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[0-9]{6}$"))
            .description(Some("全国地方公共団体コード: five digits and a check digit"))
            .into()
    }
}

impl utoipa::ToSchema for LgCode {}
