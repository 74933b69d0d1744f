//! The published ふるさと納税 rules (総務省 designation criteria, the one-stop exception and
//! the deduction arithmetic; see RULES.md), as plain functions over integer yen and dates.

use crate::date::Date;
use serde::{Deserialize, Serialize};

/// 返礼品の調達費は寄附額の 3 割以下.
pub const GIFT_COST_PERCENT: i64 = 30;
/// 募集に要する費用は寄附額の 5 割以下.
pub const SOLICITATION_COST_PERCENT: i64 = 50;
/// ワンストップ特例: at most this many municipalities per calendar year.
pub const ONESTOP_MAX_MUNICIPALITIES: u32 = 5;
/// The first day donations through portals that grant points are not allowed.
pub const POINT_PORTAL_BAN: Date = Date { year: 2025, month: 10, day: 1 };

/// True if a gift costing `procurement_cost` may be offered for `min_donation`: cost ≤ 30 %
/// of the donation (exactly 30 % is allowed).
pub fn within_gift_cost_rule(procurement_cost: i64, min_donation: i64) -> bool {
    procurement_cost >= 0 && min_donation > 0 && procurement_cost * 100 <= min_donation * GIFT_COST_PERCENT
}

/// The 地場産品 criterion a return gift qualifies under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LocalProductBasis {
    /// 区域内で生産されたもの
    ProducedInArea,
    /// 主要な原材料が区域内で生産されたもの
    MainMaterialFromArea,
    /// 製造・加工等の主要な部分を区域内で行ったもの
    ProcessedInArea,
    /// 区域内で提供される役務
    ServiceInArea,
    /// 近隣団体との共通返礼品
    SharedWithNeighbours,
}

impl LocalProductBasis {
    pub const ALL: [LocalProductBasis; 5] = [
        LocalProductBasis::ProducedInArea,
        LocalProductBasis::MainMaterialFromArea,
        LocalProductBasis::ProcessedInArea,
        LocalProductBasis::ServiceInArea,
        LocalProductBasis::SharedWithNeighbours,
    ];

    pub fn label(self) -> &'static str {
        match self {
            LocalProductBasis::ProducedInArea => "区域内で生産",
            LocalProductBasis::MainMaterialFromArea => "主要な原材料が区域内産",
            LocalProductBasis::ProcessedInArea => "主要な製造・加工を区域内で実施",
            LocalProductBasis::ServiceInArea => "区域内で提供される役務",
            LocalProductBasis::SharedWithNeighbours => "近隣団体との共通返礼品",
        }
    }
}

/// Why a donation cannot be accepted as offered, if it cannot.
pub fn check_donation(amount: i64, gift_min_donation: Option<i64>, date: Date, via_point_portal: bool) -> Result<(), String> {
    if amount <= 0 {
        return Err("寄附額は1円以上の整数で入力してください".into());
    }
    if let Some(min) = gift_min_donation
        && amount < min
    {
        return Err(format!("この返礼品は {min} 円以上の寄附が対象です（寄附額 {amount} 円）"));
    }
    if via_point_portal && date >= POINT_PORTAL_BAN {
        return Err("2025年10月以降、ポイントを付与するポータルサイト経由の寄附は受け付けられません".into());
    }
    Ok(())
}

/// The day a one-stop application (or its change form) for a donation made on
/// `donation_date` must arrive by: 10 January of the following year.
pub fn onestop_deadline(donation_date: Date) -> Date {
    Date { year: donation_date.year + 1, month: 1, day: 10 }
}

/// What the donor writes on the one-stop form (寄附金税額控除に係る申告特例申請書).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnestopForm {
    pub name: String,
    pub address: String,
    /// 個人番号 (マイナンバー).
    pub individual_number: String,
    pub birth_date: String,
    pub phone: String,
    /// Declaration: the donor files no tax return for the year.
    pub declares_no_tax_return: bool,
    /// Declaration: donations this year go to at most 5 municipalities.
    pub declares_within_five: bool,
    /// How many municipalities the donor has given to this calendar year, this one included.
    pub municipalities_this_year: u32,
}

/// マイナンバー check digit (番号法施行令 8 条).
pub fn valid_individual_number(n: &str) -> bool {
    if n.len() != 12 || !n.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let d: Vec<u32> = n.bytes().map(|b| u32::from(b - b'0')).collect();
    let sum: u32 = (1..=11).map(|k| d[11 - k] * if k <= 6 { k as u32 + 1 } else { k as u32 - 5 }).sum();
    let check = if sum % 11 <= 1 { 0 } else { 11 - sum % 11 };
    d[11] == check
}

/// The result of checking a one-stop application on arrival.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnestopAssessment {
    /// Complete: 受付.
    Received,
    /// Something is missing or wrong; the donor can send a corrected form by the deadline.
    Incomplete(Vec<String>),
    /// Cannot be an exception at all (late, or a 6th municipality).
    Refused(String),
}

pub fn assess_onestop(form: &OnestopForm, donation_date: Date, received_on: Date) -> OnestopAssessment {
    let deadline = onestop_deadline(donation_date);
    if received_on > deadline {
        return OnestopAssessment::Refused(format!("申請期限（{}）を過ぎています", deadline.wareki()));
    }
    if form.municipalities_this_year > ONESTOP_MAX_MUNICIPALITIES {
        return OnestopAssessment::Refused(format!(
            "寄附先が{}団体となり、ワンストップ特例の上限（{ONESTOP_MAX_MUNICIPALITIES}団体）を超えています。確定申告をしてください",
            form.municipalities_this_year
        ));
    }
    let mut missing = Vec::new();
    for (value, label) in [(&form.name, "氏名"), (&form.address, "住所"), (&form.phone, "電話番号")] {
        if value.trim().is_empty() {
            missing.push(format!("{label}が未記入です"));
        }
    }
    if !valid_individual_number(&form.individual_number) {
        missing.push("個人番号が正しくありません（12桁、検査用数字を確認してください）".into());
    }
    if Date::parse(&form.birth_date).is_none() {
        missing.push("生年月日が正しくありません".into());
    }
    if !form.declares_no_tax_return {
        missing.push("確定申告を行わない見込みであることの申告がありません".into());
    }
    if !form.declares_within_five {
        missing.push("寄附先が5団体以内であることの申告がありません".into());
    }
    if form.municipalities_this_year == 0 {
        missing.push("本年の寄附先団体数を記入してください".into());
    }
    if missing.is_empty() { OnestopAssessment::Received } else { OnestopAssessment::Incomplete(missing) }
}

/// 所得税の税率 (percent) for a taxable income.
pub fn income_tax_rate_percent(taxable_income: i64) -> i64 {
    match taxable_income {
        ..=1_950_000 => 5,
        ..=3_300_000 => 10,
        ..=6_950_000 => 20,
        ..=9_000_000 => 23,
        ..=18_000_000 => 33,
        ..=40_000_000 => 40,
        _ => 45,
    }
}

/// (90 % − rate × 1.021) in units of 1/100,000.
fn special_ratio(rate_percent: i64) -> i64 {
    90_000 - rate_percent * 1021
}

/// What a donation is deducted by (integer yen, each part rounded down).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Deductions {
    pub donation: i64,
    pub income_tax: i64,
    pub resident_basic: i64,
    pub resident_special: i64,
    pub total: i64,
    /// What the donor pays in the end (at least 2,000 yen when fully deducted).
    pub self_burden: i64,
}

/// The tax figures the arithmetic needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TaxFigures {
    /// 総所得金額等.
    pub total_income: i64,
    /// 所得税の課税所得 (decides the rate).
    pub taxable_income: i64,
    /// 住民税所得割額.
    pub income_based_tax: i64,
}

pub fn deductions(donation: i64, t: TaxFigures) -> Deductions {
    let rate = income_tax_rate_percent(t.taxable_income);
    let over = |cap: i64| (donation.min(cap) - 2_000).max(0);
    let income_tax = over(t.total_income * 40 / 100) * rate * 1021 / 100_000;
    let resident_basic = over(t.total_income * 30 / 100) / 10;
    let special_raw = (donation - 2_000).max(0) * special_ratio(rate) / 100_000;
    let resident_special = special_raw.min(t.income_based_tax / 5);
    let total = income_tax + resident_basic + resident_special;
    Deductions { donation, income_tax, resident_basic, resident_special, total, self_burden: donation - total }
}

/// The largest donation whose special part is not capped: 所得割額 × 20 % / (90 % − rate ×
/// 1.021) + 2,000, rounded down.
pub fn full_deduction_limit(t: TaxFigures) -> i64 {
    let rate = income_tax_rate_percent(t.taxable_income);
    t.income_based_tax * 20_000 / special_ratio(rate) + 2_000
}

/// A household as the simulator asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Household {
    /// 総所得金額等 (e.g. 給与所得).
    pub total_income: i64,
    /// 社会保険料控除.
    pub social_insurance: i64,
    /// 配偶者控除 applies.
    pub spouse: bool,
    /// 一般の扶養親族 (16–18, 23–69).
    pub dependents: u32,
    /// 特定扶養親族 (19–22).
    pub specific_dependents: u32,
    /// 老人扶養親族 (70+, not living together).
    pub elderly_dependents: u32,
}

/// Income-tax and resident-tax figures from a household, with the deductions of 令和6年分
/// (basic 480,000 / 430,000; spouse 380,000 / 330,000; dependent 380,000 / 330,000;
/// specific 630,000 / 450,000; elderly 480,000 / 380,000). An estimate: it ignores other
/// deductions and 調整控除.
pub fn estimate(h: Household) -> TaxFigures {
    let n = |count: u32, amount: i64| i64::from(count) * amount;
    let income_tax_deductions =
        480_000 + if h.spouse { 380_000 } else { 0 } + n(h.dependents, 380_000) + n(h.specific_dependents, 630_000) + n(h.elderly_dependents, 480_000);
    let resident_deductions =
        430_000 + if h.spouse { 330_000 } else { 0 } + n(h.dependents, 330_000) + n(h.specific_dependents, 450_000) + n(h.elderly_dependents, 380_000);
    let taxable_income = (h.total_income - h.social_insurance - income_tax_deductions).max(0) / 1_000 * 1_000;
    let resident_taxable = (h.total_income - h.social_insurance - resident_deductions).max(0) / 1_000 * 1_000;
    TaxFigures { total_income: h.total_income, taxable_income, income_based_tax: resident_taxable / 10 / 100 * 100 }
}

/// Figures from the municipality's resident-tax summary (linkage): the income-tax rate is
/// taken from the resident-tax base (所得割額 ÷ 10 %), which is close to the income-tax base.
pub fn from_tax_summary(total_income: i64, income_based_tax: i64) -> TaxFigures {
    TaxFigures { total_income, taxable_income: income_based_tax * 10, income_based_tax }
}

/// One year's solicitation figures and the 50 % rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AnnualReport {
    pub year: i32,
    pub donation_count: u64,
    pub donations: i64,
    pub cancelled_count: u64,
    pub gift_procurement: i64,
    pub shipping: i64,
    pub other_costs: i64,
    pub total_costs: i64,
    /// Costs as a share of donations, in tenths of a percent.
    pub cost_ratio_permille: i64,
    pub within_fifty_percent: bool,
}

impl AnnualReport {
    pub fn finish(mut self) -> Self {
        self.total_costs = self.gift_procurement + self.shipping + self.other_costs;
        self.cost_ratio_permille = if self.donations > 0 { self.total_costs * 1000 / self.donations } else { 0 };
        self.within_fifty_percent = self.total_costs * 100 <= self.donations * SOLICITATION_COST_PERCENT;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Date {
        Date::parse(s).unwrap()
    }

    #[test]
    fn thirty_percent_rule_allows_exactly_thirty() {
        assert!(within_gift_cost_rule(3_000, 10_000));
        assert!(!within_gift_cost_rule(3_001, 10_000));
        assert!(within_gift_cost_rule(2_999, 10_000));
        // 30 % of 10,001 is 3,000.3: 3,000 fits, 3,001 does not.
        assert!(within_gift_cost_rule(3_000, 10_001));
        assert!(!within_gift_cost_rule(3_001, 10_001));
        assert!(!within_gift_cost_rule(1, 0));
    }

    #[test]
    fn donations_below_the_gift_minimum_or_via_point_portals_are_refused() {
        assert!(check_donation(10_000, Some(10_000), d("2026-05-01"), false).is_ok());
        assert!(check_donation(9_999, Some(10_000), d("2026-05-01"), false).unwrap_err().contains("10000"));
        assert!(check_donation(0, None, d("2026-05-01"), false).is_err());
        assert!(check_donation(10_000, None, d("2025-09-30"), true).is_ok());
        assert!(check_donation(10_000, None, d("2025-10-01"), true).unwrap_err().contains("ポイント"));
    }

    fn form() -> OnestopForm {
        OnestopForm {
            name: "山田太郎".into(),
            address: "東京都千代田区千代田1-1".into(),
            individual_number: "123456789018".into(),
            birth_date: "1980-04-01".into(),
            phone: "03-0000-0000".into(),
            declares_no_tax_return: true,
            declares_within_five: true,
            municipalities_this_year: 3,
        }
    }

    #[test]
    fn onestop_must_arrive_by_ten_january() {
        let donated = d("2025-12-28");
        assert_eq!(onestop_deadline(donated), d("2026-01-10"));
        assert_eq!(assess_onestop(&form(), donated, d("2026-01-10")), OnestopAssessment::Received);
        assert!(matches!(assess_onestop(&form(), donated, d("2026-01-11")), OnestopAssessment::Refused(r) if r.contains("令和8年1月10日")));
        // A donation on 1 January has a whole year.
        assert_eq!(onestop_deadline(d("2026-01-01")), d("2027-01-10"));
    }

    #[test]
    fn fifth_municipality_is_fine_sixth_is_not() {
        let mut f = form();
        f.municipalities_this_year = 5;
        assert_eq!(assess_onestop(&f, d("2026-06-01"), d("2026-06-05")), OnestopAssessment::Received);
        f.municipalities_this_year = 6;
        assert!(matches!(assess_onestop(&f, d("2026-06-01"), d("2026-06-05")), OnestopAssessment::Refused(r) if r.contains("6団体")));
    }

    #[test]
    fn incomplete_forms_say_what_is_missing() {
        let mut f = form();
        f.individual_number = "123456789019".into();
        f.declares_no_tax_return = false;
        f.phone = " ".into();
        let OnestopAssessment::Incomplete(missing) = assess_onestop(&f, d("2026-06-01"), d("2026-06-05")) else { panic!() };
        assert_eq!(missing.len(), 3, "{missing:?}");
        assert!(missing.iter().any(|m| m.contains("個人番号")));
        assert!(missing.iter().any(|m| m.contains("確定申告")));
        assert!(missing.iter().any(|m| m.contains("電話番号")));
    }

    #[test]
    fn income_tax_brackets_at_their_edges() {
        assert_eq!(income_tax_rate_percent(1_950_000), 5);
        assert_eq!(income_tax_rate_percent(1_950_001), 10);
        assert_eq!(income_tax_rate_percent(3_300_000), 10);
        assert_eq!(income_tax_rate_percent(6_950_000), 20);
        assert_eq!(income_tax_rate_percent(9_000_000), 23);
        assert_eq!(income_tax_rate_percent(18_000_000), 33);
        assert_eq!(income_tax_rate_percent(40_000_000), 40);
        assert_eq!(income_tax_rate_percent(40_000_001), 45);
    }

    #[test]
    fn deductions_follow_the_published_arithmetic() {
        // 所得割額 300,000, taxable income 3,000,000 (10 %), total income 4,000,000.
        let t = TaxFigures { total_income: 4_000_000, taxable_income: 3_000_000, income_based_tax: 300_000 };
        // limit = 300,000 × 20 % / (90 % − 10.21 %) + 2,000 = 60,000 / 0.7979 + 2,000 = 77,197
        assert_eq!(full_deduction_limit(t), 77_197);
        let at_limit = deductions(77_197, t);
        // income tax: 75,197 × 10 % × 1.021 = 7,677.6 → 7,677; basic: 7,519; special: 60,000 (cap) vs 59,999.6 → 59,999
        assert_eq!(at_limit.income_tax, 7_677);
        assert_eq!(at_limit.resident_basic, 7_519);
        assert_eq!(at_limit.resident_special, 59_999);
        assert_eq!(at_limit.self_burden, 77_197 - 7_677 - 7_519 - 59_999);
        assert!(at_limit.self_burden <= 2_002);
        // Above the limit the special part is capped at 20 % of 所得割額 and the burden grows.
        let over = deductions(150_000, t);
        assert_eq!(over.resident_special, 60_000);
        assert!(over.self_burden > 40_000);
        // Nothing below 2,000 yen is deducted.
        assert_eq!(deductions(2_000, t).total, 0);
    }

    #[test]
    fn caps_by_total_income_apply() {
        // Tiny income: the basic part is capped at 30 % and the income-tax part at 40 % of it.
        let t = TaxFigures { total_income: 100_000, taxable_income: 0, income_based_tax: 0 };
        let r = deductions(50_000, t);
        assert_eq!(r.resident_basic, (30_000 - 2_000) / 10);
        assert_eq!(r.income_tax, (40_000 - 2_000) * 5 * 1021 / 100_000);
        assert_eq!(r.resident_special, 0);
    }

    #[test]
    fn household_estimate_uses_the_deduction_table() {
        let h = Household { total_income: 5_000_000, social_insurance: 700_000, spouse: true, dependents: 1, ..Household::default() };
        let t = estimate(h);
        assert_eq!(t.taxable_income, 5_000_000 - 700_000 - 480_000 - 380_000 - 380_000);
        assert_eq!(t.income_based_tax, (5_000_000 - 700_000 - 430_000 - 330_000 - 330_000) / 10);
        assert_eq!(estimate(Household::default()).income_based_tax, 0);
    }

    #[test]
    fn fifty_percent_rule() {
        let ok = AnnualReport { donations: 1_000_000, gift_procurement: 300_000, shipping: 100_000, other_costs: 100_000, ..Default::default() }.finish();
        assert!(ok.within_fifty_percent);
        assert_eq!(ok.cost_ratio_permille, 500);
        let over = AnnualReport { donations: 1_000_000, gift_procurement: 300_000, shipping: 100_000, other_costs: 100_001, ..Default::default() }.finish();
        assert!(!over.within_fifty_percent);
    }

    #[test]
    fn individual_numbers_are_checked() {
        assert!(valid_individual_number("123456789018"));
        assert!(!valid_individual_number("123456789012"));
        assert!(!valid_individual_number("12345678901a"));
    }
}
