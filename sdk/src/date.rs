//! Calendar dates (ISO 8601, proleptic Gregorian) without a date library: parsing, today's
//! date in Japan from the wall clock, day arithmetic and 和暦 for display — what municipal
//! rules (deadlines, ages, fiscal years) need.

use serde::{Deserialize, Serialize};

/// A calendar date; ordering is chronological.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Date {
    pub year: i32,
    pub month: u32,
    pub day: u32,
}

fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

pub fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        _ => 28,
    }
}

impl Date {
    pub fn new(year: i32, month: u32, day: u32) -> Option<Self> {
        ((1..=12).contains(&month) && day >= 1 && day <= days_in_month(year, month)).then_some(Date { year, month, day })
    }

    /// `YYYY-MM-DD`, exactly.
    pub fn parse(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let n = |r: std::ops::Range<usize>| s.get(r).filter(|p| p.bytes().all(|c| c.is_ascii_digit())).and_then(|p| p.parse::<u32>().ok());
        Date::new(n(0..4)? as i32, n(5..7)?, n(8..10)?)
    }

    /// Days since 1970-01-01 (negative before).
    pub fn days(self) -> i64 {
        // Howard Hinnant's days_from_civil.
        let y = i64::from(self.year) - i64::from(self.month <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = i64::from(self.month);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    pub fn from_days(z: i64) -> Self {
        let z = z + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
        Date { year, month, day }
    }

    pub fn add_days(self, n: i64) -> Self {
        Date::from_days(self.days() + n)
    }

    /// Today in Japan (UTC+9), from the wall clock.
    pub fn today() -> Self {
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        Date::from_days((secs + 9 * 3600).div_euclid(86_400))
    }

    /// `令和8年1月10日` for display (dates from 2019-05-01 on; earlier ones in 平成).
    pub fn wareki(self) -> String {
        let (era, first) = if self >= (Date { year: 2019, month: 5, day: 1 }) { ("令和", 2019) } else { ("平成", 1989) };
        let n = self.year - first + 1;
        let y = if n == 1 { "元".to_string() } else { n.to_string() };
        format!("{era}{y}年{}月{}日", self.month, self.day)
    }
}

impl std::fmt::Display for Date {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl TryFrom<String> for Date {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Date::parse(&s).ok_or_else(|| format!("`{s}` is not a date written YYYY-MM-DD"))
    }
}

impl From<Date> for String {
    fn from(d: Date) -> String {
        d.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_real_dates() {
        assert_eq!(Date::parse("2024-02-29"), Date::new(2024, 2, 29));
        assert!(Date::parse("2025-02-29").is_none());
        assert!(Date::parse("2025-1-10").is_none());
        assert!(Date::parse("2025-13-01").is_none());
    }

    #[test]
    fn day_numbers_round_trip() {
        let d = Date::new(2026, 1, 10).unwrap();
        assert_eq!(Date::from_days(d.days()), d);
        assert_eq!(Date::new(1970, 1, 1).unwrap().days(), 0);
        assert_eq!(Date::new(2024, 12, 31).unwrap().add_days(1), Date::new(2025, 1, 1).unwrap());
        assert_eq!(Date::new(2024, 3, 1).unwrap().add_days(-1), Date::new(2024, 2, 29).unwrap());
    }

    #[test]
    fn wareki() {
        assert_eq!(Date::new(2026, 1, 10).unwrap().wareki(), "令和8年1月10日");
        assert_eq!(Date::new(2019, 5, 1).unwrap().wareki(), "令和元年5月1日");
        assert_eq!(Date::new(2019, 4, 30).unwrap().wareki(), "平成31年4月30日");
    }
}
