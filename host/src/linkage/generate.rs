//! Synthetic municipalities for demos, tests and benchmarks: households of one to five
//! people with plausible ages and relationships, names in kanji and kana (a few with 外字
//! as private-use characters and with IVS), addresses, identity numbers with valid check
//! digits, moves and deaths, and resident-tax summaries from a wage distribution.
//! Deterministic for a given seed and reference date.

use super::import::Encoding;
use super::layout::{RESIDENT_COLUMNS, TAX_COLUMNS, resident_fields, tax_fields};
use super::{IdentityNumbers, Resident, Sex, Status, TaxSummary, individual_number_check_digit};
use chrono::{Datelike, Duration, NaiveDate};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::io::Write;

const SURNAMES: &[(&str, &str)] = &[
    ("佐藤", "サトウ"), ("鈴木", "スズキ"), ("高橋", "タカハシ"), ("田中", "タナカ"), ("伊藤", "イトウ"),
    ("渡辺", "ワタナベ"), ("山本", "ヤマモト"), ("中村", "ナカムラ"), ("小林", "コバヤシ"), ("加藤", "カトウ"),
    ("吉田", "ヨシダ"), ("山田", "ヤマダ"), ("佐々木", "ササキ"), ("山口", "ヤマグチ"), ("松本", "マツモト"),
    ("井上", "イノウエ"), ("木村", "キムラ"), ("林", "ハヤシ"), ("斎藤", "サイトウ"), ("清水", "シミズ"),
    ("山崎", "ヤマザキ"), ("森", "モリ"), ("池田", "イケダ"), ("橋本", "ハシモト"), ("阿部", "アベ"),
    ("石川", "イシカワ"), ("前田", "マエダ"), ("藤田", "フジタ"), ("小川", "オガワ"), ("岡田", "オカダ"),
    ("髙橋", "タカハシ"), ("渡邉", "ワタナベ"), ("比嘉", "ヒガ"), ("金城", "キンジョウ"), ("大城", "オオシロ"),
];
/// Surnames written with a character only a 外字 font has (private use) or an IVS.
const RARE_SURNAMES: &[(&str, &str)] = &[("\u{E000}田", "ツチダ"), ("葛\u{E0100}西", "カサイ"), ("辻\u{E0101}", "ツジ"), ("\u{E001}野", "ハシノ")];
const MALE_NAMES: &[(&str, &str)] = &[
    ("太郎", "タロウ"), ("大翔", "ヒロト"), ("蓮", "レン"), ("悠真", "ユウマ"), ("湊", "ミナト"), ("健一", "ケンイチ"),
    ("誠", "マコト"), ("浩", "ヒロシ"), ("翔太", "ショウタ"), ("陽翔", "ハルト"), ("一郎", "イチロウ"), ("隆", "タカシ"),
    ("拓海", "タクミ"), ("大輔", "ダイスケ"), ("和夫", "カズオ"), ("茂", "シゲル"),
];
const FEMALE_NAMES: &[(&str, &str)] = &[
    ("花子", "ハナコ"), ("陽葵", "ヒマリ"), ("凛", "リン"), ("結菜", "ユイナ"), ("美咲", "ミサキ"), ("由美子", "ユミコ"),
    ("恵子", "ケイコ"), ("さくら", "サクラ"), ("芽依", "メイ"), ("陽子", "ヨウコ"), ("裕子", "ユウコ"), ("葵", "アオイ"),
    ("千尋", "チヒロ"), ("幸子", "サチコ"), ("和子", "カズコ"), ("真由美", "マユミ"),
];
const TOWNS: &[&str] = &["本町", "中央", "栄町", "緑町", "旭町", "幸町", "東町", "西町", "南町", "北町", "若葉", "桜台"];

/// What to generate.
#[derive(Debug, Clone)]
pub struct Spec {
    pub lg_code: String,
    /// Written before every address, e.g. `北海道札幌市`.
    pub place: String,
    pub residents: usize,
    pub seed: u64,
    /// Ages, moves and the tax year are relative to this day.
    pub as_of: NaiveDate,
    /// Leave out names Shift_JIS cannot carry (IVS), for a Shift_JIS file.
    pub shift_jis_safe: bool,
}

/// A generated municipality.
pub struct Generated {
    pub residents: Vec<(Resident, IdentityNumbers)>,
    pub tax: Vec<TaxSummary>,
}

fn pick<'a>(rng: &mut SmallRng, list: &'a [(&'a str, &'a str)]) -> (&'a str, &'a str) {
    list[rng.random_range(0..list.len())]
}

fn digits(rng: &mut SmallRng, n: usize) -> String {
    (0..n).map(|_| char::from(b'0' + rng.random_range(0..10u8))).collect()
}

fn date_between(rng: &mut SmallRng, from: NaiveDate, to: NaiveDate) -> NaiveDate {
    let days = (to - from).num_days().max(0);
    from + Duration::days(rng.random_range(0..=days))
}

fn birth_for_age(rng: &mut SmallRng, as_of: NaiveDate, age: i32) -> NaiveDate {
    let latest = as_of - Duration::days(i64::from(age) * 365 + i64::from(age / 4));
    date_between(rng, latest - Duration::days(364), latest)
}

pub fn generate(spec: &Spec) -> Generated {
    let mut rng = SmallRng::seed_from_u64(spec.seed);
    let mut residents = Vec::with_capacity(spec.residents);
    let mut tax = Vec::new();
    let postal_prefix = 100 + (spec.lg_code.parse::<u32>().unwrap_or(0) % 899);
    let fiscal_year = if spec.as_of.month() >= 4 { spec.as_of.year() } else { spec.as_of.year() - 1 };
    let mut household_no = 0u64;
    while residents.len() < spec.residents {
        household_no += 1;
        let size = match rng.random_range(0..100) {
            0..35 => 1,
            35..63 => 2,
            63..80 => 3,
            80..94 => 4,
            _ => 5,
        }
        .min(spec.residents - residents.len());
        let (surname, surname_kana) = if rng.random_range(0..400) == 0 {
            let rare = pick(&mut rng, RARE_SURNAMES);
            if spec.shift_jis_safe && rare.0.chars().any(|c| ('\u{E0100}'..='\u{E01EF}').contains(&c)) { pick(&mut rng, SURNAMES) } else { rare }
        } else {
            pick(&mut rng, SURNAMES)
        };
        let town = TOWNS[rng.random_range(0..TOWNS.len())];
        let address = format!("{}{}{}丁目{}番{}号", spec.place, town, rng.random_range(1..6), rng.random_range(1..30), rng.random_range(1..20));
        let postal = format!("{postal_prefix:03}{:04}", rng.random_range(0..10000));
        let head_age = if size >= 3 { rng.random_range(28..55) } else { rng.random_range(19..92) };
        let head_male = rng.random_range(0..100) < 70;
        let mut members: Vec<(&str, i32, bool)> = vec![("世帯主", head_age, head_male)];
        if size >= 2 {
            let couple = size >= 3 || rng.random_range(0..100) < 75;
            if couple {
                members.push((if head_male { "妻" } else { "夫" }, (head_age + rng.random_range(-4..5)).max(18), !head_male));
            } else {
                members.push(("子", (head_age - rng.random_range(20..36)).max(0), rng.random_range(0..2) == 0));
            }
        }
        while members.len() < size {
            let age = (head_age - rng.random_range(22..40)).clamp(0, 30);
            members.push(("子", age, rng.random_range(0..2) == 0));
        }
        let moved_in = date_between(&mut rng, spec.as_of - Duration::days(365 * 30), spec.as_of - Duration::days(30));
        let household_status = match rng.random_range(0..100) {
            0..2 => Status::MovedOut,
            _ => Status::Resident,
        };
        for (relationship, age, male) in members {
            let n = residents.len() as u64 + 1;
            let (given, given_kana) = pick(&mut rng, if male { MALE_NAMES } else { FEMALE_NAMES });
            let birth = birth_for_age(&mut rng, spec.as_of, age);
            let since = if birth > moved_in { birth } else { moved_in };
            let status = if household_status == Status::Resident && age > 70 && rng.random_range(0..100) < 4 {
                Status::Deceased
            } else {
                household_status
            };
            let (changed_on, reason) = match status {
                Status::Resident if since == birth => (Some(birth), Some("出生")),
                Status::Resident => (Some(since), Some("転入")),
                Status::MovedOut => (Some(date_between(&mut rng, since, spec.as_of)), Some("転出")),
                Status::Deceased => (Some(date_between(&mut rng, since, spec.as_of)), Some("死亡")),
            };
            let first11 = digits(&mut rng, 11);
            let resident = Resident {
                addressee_number: format!("{:010}", 1_000_000_000 + n),
                integrated_number: format!("{:010}", 5_000_000_000 + n),
                household_number: format!("{:08}", 10_000_000 + household_no),
                name: format!("{surname}\u{3000}{given}"),
                name_kana: format!("{surname_kana}\u{3000}{given_kana}"),
                birth_date: birth.format("%Y-%m-%d").to_string(),
                sex: if male { Sex::Male } else { Sex::Female },
                relationship: relationship.to_string(),
                postal_code: postal.clone(),
                address: address.clone(),
                resident_since: since.format("%Y-%m-%d").to_string(),
                status,
                status_changed_on: changed_on.map(|d| d.format("%Y-%m-%d").to_string()),
                status_reason: reason.map(str::to_string),
            };
            let numbers = IdentityNumbers {
                individual_number: Some(format!("{first11}{}", individual_number_check_digit(&first11))),
                resident_record_code: Some(digits(&mut rng, 11)),
            };
            if (20..75).contains(&age) && status == Status::Resident && rng.random_range(0..100) < 70 {
                // Annual income, skewed: most between 2 and 6 million yen.
                let income: i64 = (rng.random_range(150..700) + rng.random_range(0..500) * i64::from(rng.random_range(0..100) < 15)) * 10_000;
                let taxable = (income - 430_000 - income * 15 / 100).max(0);
                tax.push(TaxSummary {
                    addressee_number: resident.addressee_number.clone(),
                    fiscal_year: i64::from(fiscal_year),
                    total_income: income,
                    income_based_tax: taxable / 10 / 100 * 100,
                });
            }
            residents.push((resident, numbers));
        }
    }
    Generated { residents, tax }
}

fn write_line(out: &mut impl Write, fields: &[String], encoding: Encoding) -> std::io::Result<()> {
    let mut csv = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(Vec::new());
    csv.write_record(fields)?;
    let line = csv.into_inner().map_err(|e| std::io::Error::other(e.to_string()))?;
    match encoding {
        Encoding::Utf8 => out.write_all(&line),
        Encoding::ShiftJis => {
            let text = String::from_utf8(line).expect("UTF-8 fields");
            let bytes = super::export::encode_shift_jis(&text)
                .map_err(|c| std::io::Error::other(format!("`{c}` cannot be written in Shift_JIS")))?;
            out.write_all(&bytes)
        }
    }
}

/// Writes the residents layout.
pub fn write_residents(out: &mut impl Write, rows: &[(Resident, IdentityNumbers)], encoding: Encoding) -> std::io::Result<()> {
    write_line(out, &RESIDENT_COLUMNS.map(String::from), encoding)?;
    for (r, n) in rows {
        write_line(out, &resident_fields(r, n), encoding)?;
    }
    Ok(())
}

/// Writes the tax layout.
pub fn write_tax(out: &mut impl Write, rows: &[TaxSummary], encoding: Encoding) -> std::io::Result<()> {
    write_line(out, &TAX_COLUMNS.map(String::from), encoding)?;
    for t in rows {
        write_line(out, &tax_fields(t), encoding)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linkage::layout::{parse_resident, parse_tax};

    #[test]
    fn generated_rows_pass_the_importer_checks_and_are_deterministic() {
        let spec = Spec {
            lg_code: "011002".into(),
            place: "北海道札幌市".into(),
            residents: 3000,
            seed: 7,
            as_of: NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
            shift_jis_safe: false,
        };
        let a = generate(&spec);
        assert_eq!(a.residents.len(), 3000);
        for (r, n) in &a.residents {
            let fields = resident_fields(r, n);
            let refs: Vec<&str> = fields.iter().map(String::as_str).collect();
            parse_resident(&refs).unwrap_or_else(|e| panic!("{e}: {fields:?}"));
        }
        for t in &a.tax {
            let fields = tax_fields(t);
            let refs: Vec<&str> = fields.iter().map(String::as_str).collect();
            parse_tax(&refs).unwrap();
        }
        assert!(a.tax.len() > 1000, "working-age residents have tax rows");
        assert!(a.residents.iter().any(|(r, _)| r.status == Status::MovedOut));
        assert!(a.residents.iter().any(|(r, _)| r.relationship == "子"));
        let b = generate(&spec);
        assert_eq!(a.residents, b.residents);
    }
}
