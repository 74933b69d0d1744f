//! 児童手当 under the rules in force from 2024-10 (see RULES.md): who counts, the monthly
//! amount per child, when payment starts and ends, and the even-month payment schedule.
//! Months are `(year, month)`; money is integer yen.

use crate::date::Date;
use serde::{Deserialize, Serialize};

/// A calendar month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Month {
    pub year: i32,
    pub month: u32,
}

impl Month {
    pub fn of(d: Date) -> Self {
        Month { year: d.year, month: d.month }
    }

    pub fn next(self) -> Self {
        if self.month == 12 { Month { year: self.year + 1, month: 1 } } else { Month { year: self.year, month: self.month + 1 } }
    }

    pub fn prev(self) -> Self {
        if self.month == 1 { Month { year: self.year - 1, month: 12 } } else { Month { year: self.year, month: self.month - 1 } }
    }

    /// `YYYY-MM`.
    pub fn parse(s: &str) -> Option<Self> {
        let (y, m) = s.split_once('-')?;
        if y.len() != 4 || m.len() != 2 || !y.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
            return None;
        }
        let (year, month) = (y.parse().ok()?, m.parse().ok()?);
        // 児童手当 began in 1972; a year past 2999 is a typing mistake.
        ((1972..=2999).contains(&year) && (1..=12).contains(&month)).then_some(Month { year, month })
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

pub const UNDER_THREE: i64 = 15_000;
pub const STANDARD: i64 = 10_000;
pub const THIRD_OR_LATER: i64 = 30_000;

/// The day a person born on `birth` reaches `age` (年齢計算ニ関スル法律: the end of the day
/// before the birthday, so the day before).
pub fn reaches_age(birth: Date, age: i32) -> Date {
    // The birthday in the target year; 29 February counts from 1 March in common years.
    let birthday = Date::new(birth.year + age, birth.month, birth.day).unwrap_or(Date { year: birth.year + age, month: 3, day: 1 });
    birthday.add_days(-1)
}

/// The first 31 March on or after the day a person reaches `age`: the end of 高校生年代
/// (age 18) or 大学生年代 (age 22).
pub fn school_year_end(birth: Date, age: i32) -> Date {
    let reached = reaches_age(birth, age);
    let march = Date { year: reached.year, month: 3, day: 31 };
    if reached <= march { march } else { Date { year: reached.year + 1, month: 3, day: 31 } }
}

/// One child of the claimant, as the rules need it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Child {
    pub addressee_number: String,
    pub birth_date: Date,
    /// A 大学生年代 child the claimant supports (監護相当・生計費の負担, declared on the
    /// confirmation form).
    #[serde(default)]
    pub supported: bool,
    /// The first month the child is in the claim (month after its claim or revision).
    pub from: Month,
    /// The last month the child is in the claim (moved out, died), if it ended.
    #[serde(default)]
    pub until: Option<Month>,
}

/// What one child gets in one month, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChildAmount {
    pub addressee_number: String,
    /// 1-based rank among counted children (oldest first); none if not counted.
    pub rank: Option<u32>,
    pub amount: i64,
    pub reason: &'static str,
}

/// The monthly amount per child for `month`. Children are counted oldest first while in
/// 大学生年代 (a child past 高校生年代 only if supported); counted children past 高校生年代
/// receive nothing; a third or later child gets ¥30,000; otherwise ¥15,000 under three (to
/// the month the child reaches three) and ¥10,000 after.
pub fn monthly_amounts(children: &[Child], month: Month) -> Vec<ChildAmount> {
    let mut sorted: Vec<&Child> = children.iter().collect();
    sorted.sort_by_key(|c| (c.birth_date, c.addressee_number.clone()));
    let mut rank = 0;
    let mut out = Vec::new();
    for c in sorted {
        let born = Month::of(c.birth_date) <= month;
        let high_school = month <= Month::of(school_year_end(c.birth_date, 18));
        let university = month <= Month::of(school_year_end(c.birth_date, 22));
        let counted = born && (high_school || (university && c.supported));
        let in_claim = c.from <= month && c.until.is_none_or(|u| month <= u);
        if !counted {
            let reason = if !born { "未出生" } else if university { "大学生年代（監護・生計費の負担なし）" } else { "対象年齢外" };
            out.push(ChildAmount { addressee_number: c.addressee_number.clone(), rank: None, amount: 0, reason });
            continue;
        }
        rank += 1;
        let (amount, reason) = if !high_school {
            (0, "大学生年代（算定対象として数えるのみ）")
        } else if !in_claim {
            (0, "支給対象期間外")
        } else if rank >= 3 {
            (THIRD_OR_LATER, "第3子以降")
        } else if month <= Month::of(reaches_age(c.birth_date, 3)) {
            (UNDER_THREE, "3歳未満")
        } else {
            (STANDARD, "3歳以上高校生年代まで")
        };
        out.push(ChildAmount { addressee_number: c.addressee_number.clone(), rank: Some(rank), amount, reason });
    }
    out
}

pub fn monthly_total(children: &[Child], month: Month) -> i64 {
    monthly_amounts(children, month).iter().map(|a| a.amount).sum()
}

/// The first month paid for a claim (or revision) filed on `filed`: the month after the
/// month of filing, or after the month of the event (birth, move-in) if the claim was filed
/// within 15 days of the day after it (15日特例).
pub fn first_paid_month(filed: Date, event: Option<Date>) -> Month {
    let counted_as = match event {
        Some(e) if e <= filed && filed <= e.add_days(15) => e,
        _ => filed,
    };
    Month::of(counted_as).next()
}

/// The last month paid when the entitlement ends on `ended` (moving out, death).
pub fn last_paid_month(ended: Date) -> Month {
    Month::of(ended)
}

/// True for payment months: February, April, June, August, October, December.
pub fn is_payment_month(m: Month) -> bool {
    m.month % 2 == 0
}

/// The two months a payment in `payment` covers (the two preceding months).
pub fn covered_months(payment: Month) -> [Month; 2] {
    let last = payment.prev();
    [last.prev(), last]
}

/// The payment month that pays for `month`.
pub fn paid_in(month: Month) -> Month {
    let next = month.next();
    if is_payment_month(next) { next } else { next.next() }
}

/// The amount due in payment month `payment` for these children.
pub fn payment_due(children: &[Child], payment: Month) -> i64 {
    covered_months(payment).iter().map(|m| monthly_total(children, *m)).sum()
}

#[cfg(test)]
mod tests {
    #[test]
    fn months_are_four_digit_years_and_two_digit_months() {
        assert_eq!(Month::parse("2026-06"), Some(Month { year: 2026, month: 6 }));
        for bad in ["0000-02", "+999-12", "2026-13", "2026-6", "２０２６-06", "9999-02"] {
            assert_eq!(Month::parse(bad), None, "{bad}");
        }
    }

    use super::*;

    fn d(s: &str) -> Date {
        Date::parse(s).unwrap()
    }

    fn m(s: &str) -> Month {
        Month::parse(s).unwrap()
    }

    fn child(n: &str, birth: &str, supported: bool) -> Child {
        Child { addressee_number: n.into(), birth_date: d(birth), supported, from: m("2000-01"), until: None }
    }

    #[test]
    fn first_of_april_belongs_to_the_school_year_above() {
        // Born 1 April: reaches 18 on 31 March, so 高校生年代 ends that very day.
        assert_eq!(reaches_age(d("2008-04-01"), 18), d("2026-03-31"));
        assert_eq!(school_year_end(d("2008-04-01"), 18), d("2026-03-31"));
        // Born 2 April: reaches 18 on 1 April, so it runs to the next 31 March.
        assert_eq!(school_year_end(d("2008-04-02"), 18), d("2027-03-31"));
        // Born 31 March.
        assert_eq!(school_year_end(d("2008-03-31"), 18), d("2026-03-31"));
        assert_eq!(school_year_end(d("2004-04-02"), 22), d("2027-03-31"));
        // 29 February.
        assert_eq!(reaches_age(d("2008-02-29"), 18), d("2026-02-28"));
    }

    #[test]
    fn the_published_example() {
        // Ages 20 (supported), 17, 13, 10 in 2026-06 → 0, 10,000, 30,000, 30,000.
        let kids = [child("a", "2006-01-10", true), child("b", "2009-01-10", false), child("c", "2013-01-10", false), child("d", "2016-01-10", false)];
        let amounts: Vec<i64> = monthly_amounts(&kids, m("2026-06")).iter().map(|a| a.amount).collect();
        assert_eq!(amounts, vec![0, 10_000, 30_000, 30_000]);
        // Without the support declaration the 20-year-old is not counted: 10,000 each for the
        // first two and 10,000 for the third (now the second).
        let mut unsupported = kids.clone();
        unsupported[0].supported = false;
        let amounts: Vec<i64> = monthly_amounts(&unsupported, m("2026-06")).iter().map(|a| a.amount).collect();
        assert_eq!(amounts, vec![0, 10_000, 10_000, 30_000]);
    }

    #[test]
    fn under_three_until_the_month_the_child_reaches_three() {
        let born_on_the_2nd = [child("a", "2024-05-02", false)];
        assert_eq!(monthly_total(&born_on_the_2nd, m("2027-05")), UNDER_THREE);
        assert_eq!(monthly_total(&born_on_the_2nd, m("2027-06")), STANDARD);
        // Born on the 1st: reaches three on the last day of the month before.
        let born_on_the_1st = [child("a", "2024-05-01", false)];
        assert_eq!(monthly_total(&born_on_the_1st, m("2027-04")), UNDER_THREE);
        assert_eq!(monthly_total(&born_on_the_1st, m("2027-05")), STANDARD);
    }

    #[test]
    fn high_school_age_ends_in_march() {
        let kid = [child("a", "2008-04-02", false)];
        assert_eq!(monthly_total(&kid, m("2027-03")), STANDARD);
        assert_eq!(monthly_total(&kid, m("2027-04")), 0);
        let april_first = [child("a", "2008-04-01", false)];
        assert_eq!(monthly_total(&april_first, m("2026-03")), STANDARD);
        assert_eq!(monthly_total(&april_first, m("2026-04")), 0);
    }

    #[test]
    fn a_supported_university_age_child_keeps_the_third_child_rate() {
        // Oldest finishes 大学生年代 at the end of March 2026: from April the youngest is
        // the second counted child.
        let kids = [child("a", "2003-06-01", true), child("b", "2010-06-01", false), child("c", "2015-06-01", false)];
        assert_eq!(monthly_total(&kids, m("2026-03")), 10_000 + 30_000);
        assert_eq!(monthly_total(&kids, m("2026-04")), 10_000 + 10_000);
    }

    #[test]
    fn fifteen_day_rule() {
        // Born 25 January: a claim up to 9 February counts as filed in January.
        assert_eq!(first_paid_month(d("2026-02-09"), Some(d("2026-01-25"))), m("2026-02"));
        assert_eq!(first_paid_month(d("2026-02-10"), Some(d("2026-01-25"))), m("2026-03"));
        // No event: the month after filing.
        assert_eq!(first_paid_month(d("2026-01-31"), None), m("2026-02"));
        assert_eq!(first_paid_month(d("2026-12-15"), None), m("2027-01"));
    }

    #[test]
    fn even_month_payments_cover_the_two_months_before() {
        assert!(is_payment_month(m("2026-02")) && !is_payment_month(m("2026-03")));
        assert_eq!(covered_months(m("2026-02")), [m("2025-12"), m("2026-01")]);
        assert_eq!(covered_months(m("2026-06")), [m("2026-04"), m("2026-05")]);
        assert_eq!(paid_in(m("2025-12")), m("2026-02"));
        assert_eq!(paid_in(m("2026-01")), m("2026-02"));
        assert_eq!(paid_in(m("2026-02")), m("2026-04"));
        let kid = [child("a", "2020-06-10", false)];
        assert_eq!(payment_due(&kid, m("2026-06")), 20_000);
    }

    #[test]
    fn claim_period_limits_payment() {
        let mut kid = child("a", "2020-06-10", false);
        kid.from = m("2026-05");
        kid.until = Some(last_paid_month(d("2026-08-20")));
        assert_eq!(monthly_total(std::slice::from_ref(&kid), m("2026-04")), 0);
        assert_eq!(monthly_total(std::slice::from_ref(&kid), m("2026-05")), STANDARD);
        assert_eq!(monthly_total(std::slice::from_ref(&kid), m("2026-08")), STANDARD);
        assert_eq!(monthly_total(std::slice::from_ref(&kid), m("2026-09")), 0);
        assert_eq!(payment_due(std::slice::from_ref(&kid), m("2026-06")), STANDARD);
    }
}
