//! Data linkage: the municipality's standard data (住民基本台帳, 個人住民税 summaries), its
//! change feed and the push of changes to modules, bulk import and export of the standard
//! CSV layouts, the synthetic-data generator, and the audit trail of reads.
//!
//! The records here are the host's; `capabilities::{registry, tax, changes}` turn them into
//! the WIT types modules see, and `store::linkage` keeps them.

pub mod audit;
pub mod delivery;
pub mod export;
pub mod generate;
pub mod import;
pub mod layout;

/// Where a resident stands in the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Resident,
    MovedOut,
    Deceased,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Resident => "resident",
            Status::MovedOut => "moved-out",
            Status::Deceased => "deceased",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "resident" => Some(Status::Resident),
            "moved-out" => Some(Status::MovedOut),
            "deceased" => Some(Status::Deceased),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sex {
    Male,
    Female,
    Unspecified,
}

impl Sex {
    pub fn as_str(self) -> &'static str {
        match self {
            Sex::Male => "male",
            Sex::Female => "female",
            Sex::Unspecified => "unspecified",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "male" => Some(Sex::Male),
            "female" => Some(Sex::Female),
            "unspecified" => Some(Sex::Unspecified),
            _ => None,
        }
    }
}

/// One resident of the registry (the basic items and household; no identity numbers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resident {
    pub addressee_number: String,
    pub integrated_number: String,
    pub household_number: String,
    pub name: String,
    pub name_kana: String,
    pub birth_date: String,
    pub sex: Sex,
    pub relationship: String,
    pub postal_code: String,
    pub address: String,
    pub resident_since: String,
    pub status: Status,
    pub status_changed_on: Option<String>,
    pub status_reason: Option<String>,
}

/// マイナンバー and 住民票コード, kept apart from [`Resident`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityNumbers {
    pub individual_number: Option<String>,
    pub resident_record_code: Option<String>,
}

/// 個人住民税 summary of one resident for one fiscal year, in integer yen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaxSummary {
    pub addressee_number: String,
    pub fiscal_year: i64,
    pub total_income: i64,
    pub income_based_tax: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Registered,
    Updated,
    MovedOut,
    Deceased,
    Reinstated,
    TaxAssessed,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Registered => "registered",
            ChangeKind::Updated => "updated",
            ChangeKind::MovedOut => "moved-out",
            ChangeKind::Deceased => "deceased",
            ChangeKind::Reinstated => "reinstated",
            ChangeKind::TaxAssessed => "tax-assessed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Registered, Self::Updated, Self::MovedOut, Self::Deceased, Self::Reinstated, Self::TaxAssessed]
            .into_iter()
            .find(|k| k.as_str() == s)
    }

    /// What a new version of a resident's record means for the feed; `None` if nothing a
    /// module can see changed.
    pub fn between(before: Option<&Resident>, after: &Resident) -> Option<Self> {
        let Some(before) = before else { return Some(ChangeKind::Registered) };
        if before == after {
            return None;
        }
        Some(match (before.status, after.status) {
            (a, b) if a == b => ChangeKind::Updated,
            (_, Status::MovedOut) => ChangeKind::MovedOut,
            (_, Status::Deceased) => ChangeKind::Deceased,
            (_, Status::Resident) => ChangeKind::Reinstated,
        })
    }
}

/// One entry of a municipality's change feed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    pub cursor: i64,
    pub kind: &'static str,
    pub addressee_number: String,
    pub household_number: String,
    pub effective_date: String,
    pub reason: String,
}

/// The key kana names are searched by: katakana without spaces, hiragana folded to
/// katakana, so `やまだ たろう` finds `ヤマダ　タロウ`.
pub fn kana_key(kana: &str) -> String {
    kana.chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c {
            // ぁ..ゖ → ァ..ヶ
            '\u{3041}'..='\u{3096}' => char::from_u32(c as u32 + 0x60).unwrap_or(c),
            _ => c,
        })
        .collect()
}

/// True for the characters a 氏名カナ may hold: full-width katakana (with ー and ・) and
/// spaces.
pub fn is_kana_name(s: &str) -> bool {
    !s.trim().is_empty() && s.chars().all(|c| matches!(c, '\u{30A1}'..='\u{30FA}' | 'ー' | '・' | 'ヽ' | 'ヾ' | ' ' | '\u{3000}'))
}

/// マイナンバー check digit (番号法施行令 第8条): 11 digits weighted 6,5,4,3,2,7,6,5,4,3,2
/// from the left; the check digit is 11 − (sum mod 11), or 0 when that is 10 or 11.
pub fn valid_individual_number(n: &str) -> bool {
    if n.len() != 12 || !n.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    n.as_bytes()[11] - b'0' == individual_number_check_digit(&n[..11])
}

pub fn individual_number_check_digit(first11: &str) -> u8 {
    let digits: Vec<u32> = first11.bytes().map(|b| u32::from(b - b'0')).collect();
    let sum: u32 = (1..=11).map(|n| digits[11 - n] * if n <= 6 { n as u32 + 1 } else { n as u32 - 5 }).sum();
    let r = sum % 11;
    if r <= 1 { 0 } else { (11 - r) as u8 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kana_key_folds_hiragana_and_drops_spaces() {
        assert_eq!(kana_key("やまだ　たろう"), "ヤマダタロウ");
        assert_eq!(kana_key("ヤマダ タロウ"), "ヤマダタロウ");
        assert!(is_kana_name("ヤマダ　タロウ"));
        assert!(!is_kana_name("山田"));
        assert!(!is_kana_name("  "));
    }

    #[test]
    fn individual_number_check_digit_matches_published_examples() {
        // Weights from the left: 6 5 4 3 2 7 6 5 4 3 2.
        // 12345678901: 6+10+12+12+10+42+42+40+36+0+2 = 212; 212 mod 11 = 3; 11-3 = 8.
        assert_eq!(individual_number_check_digit("12345678901"), 8);
        assert!(valid_individual_number("123456789018"));
        assert!(!valid_individual_number("123456789019"));
        assert!(!valid_individual_number("12345678901"));
    }

    #[test]
    fn change_kind_follows_status() {
        let a = Resident {
            addressee_number: "1".into(),
            integrated_number: "1".into(),
            household_number: "1".into(),
            name: "山田太郎".into(),
            name_kana: "ヤマダ タロウ".into(),
            birth_date: "1980-01-01".into(),
            sex: Sex::Male,
            relationship: "世帯主".into(),
            postal_code: "1000001".into(),
            address: "千代田区千代田1-1".into(),
            resident_since: "2000-01-01".into(),
            status: Status::Resident,
            status_changed_on: None,
            status_reason: None,
        };
        assert_eq!(ChangeKind::between(None, &a), Some(ChangeKind::Registered));
        assert_eq!(ChangeKind::between(Some(&a), &a), None);
        let moved = Resident { status: Status::MovedOut, ..a.clone() };
        assert_eq!(ChangeKind::between(Some(&a), &moved), Some(ChangeKind::MovedOut));
        assert_eq!(ChangeKind::between(Some(&moved), &a), Some(ChangeKind::Reinstated));
        let renamed = Resident { address: "千代田区一番町1".into(), ..a.clone() };
        assert_eq!(ChangeKind::between(Some(&a), &renamed), Some(ChangeKind::Updated));
    }
}
