//! Form definitions as data, and validation of submitted values against them. Pure
//! functions: unit-tested without a host.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FieldKind {
    Text,
    /// Full-width katakana.
    Kana,
    Date,
    PostalCode,
    Address,
    /// Whole yen.
    Money,
    Choice,
    /// An attachment: `{ "name", "content_type", "data" (base64) }`.
    File,
}

/// Which resident item prefills a field (from the registry, for a signed-in resident).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Prefill {
    Name,
    NameKana,
    BirthDate,
    PostalCode,
    Address,
    AddresseeNumber,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    pub name: String,
    pub label: String,
    pub kind: FieldKind,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub max_length: Option<usize>,
    #[serde(default)]
    pub min: Option<i64>,
    #[serde(default)]
    pub max: Option<i64>,
    /// A regular expression the whole value must match.
    #[serde(default)]
    pub pattern: Option<String>,
    #[serde(default)]
    pub choices: Vec<String>,
    #[serde(default)]
    pub prefill: Option<Prefill>,
    /// File: allowed content types.
    #[serde(default)]
    pub accept: Vec<String>,
    /// File: largest size in bytes.
    #[serde(default)]
    pub max_bytes: Option<usize>,
}

/// One version of a procedure's form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FormDef {
    pub id: String,
    #[serde(default)]
    pub version: u32,
    pub title: String,
    #[serde(default)]
    pub description: String,
    pub fields: Vec<Field>,
    /// Topic published (to other modules) when an application is completed, e.g.
    /// `child-allowance-claim`.
    #[serde(default)]
    pub handoff: Option<String>,
}

fn slug(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

impl FormDef {
    /// Checks a definition before it becomes a new version.
    pub fn check(&self) -> Result<(), String> {
        if !slug(&self.id) {
            return Err(format!("form id `{}` must be 1–64 of a-z, 0-9, `-`, `_`", self.id));
        }
        if self.title.trim().is_empty() || self.fields.is_empty() {
            return Err("a form needs a title and at least one field".into());
        }
        let mut names = std::collections::BTreeSet::new();
        for f in &self.fields {
            if !slug(&f.name) || !names.insert(f.name.as_str()) {
                return Err(format!("field name `{}` must be unique and 1–64 of a-z, 0-9, `-`, `_`", f.name));
            }
            if f.label.trim().is_empty() {
                return Err(format!("field `{}` needs a label", f.name));
            }
            if f.kind == FieldKind::Choice && f.choices.is_empty() {
                return Err(format!("choice field `{}` needs choices", f.name));
            }
            if let Some(p) = &f.pattern {
                regex_lite::Regex::new(p).map_err(|e| format!("field `{}` has an invalid pattern: {e}", f.name))?;
            }
        }
        if let Some(t) = &self.handoff
            && !(slug(t) && !t.contains('_'))
        {
            return Err(format!("handoff topic `{t}` must be a-z, 0-9 and `-`"));
        }
        Ok(())
    }
}

/// An attachment as submitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// Values that passed validation: text values by field, attachments separately.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Validated {
    pub values: BTreeMap<String, String>,
    pub files: BTreeMap<String, Attachment>,
}

fn is_kana(s: &str) -> bool {
    s.chars().all(|c| matches!(c, '\u{30A1}'..='\u{30FA}' | 'ー' | '・' | ' ' | '\u{3000}'))
}

fn valid_date(s: &str) -> bool {
    crate::date::Date::parse(s).is_some()
}

/// Validates `input` against `form`; every problem is reported as (field, message), all at
/// once, so the applicant can fix everything in one go. `max_attachment` caps every file
/// field.
pub fn validate(form: &FormDef, input: &Map<String, Value>, max_attachment: usize) -> Result<Validated, Vec<(String, String)>> {
    use base64::Engine;
    let mut out = Validated::default();
    let mut errors = Vec::new();
    for f in &form.fields {
        let raw = input.get(&f.name);
        if f.kind == FieldKind::File {
            let Some(Value::Object(file)) = raw else {
                if f.required {
                    errors.push((f.name.clone(), format!("{}を添付してください", f.label)));
                }
                continue;
            };
            let text = |k: &str| file.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(text("data")) else {
                errors.push((f.name.clone(), format!("{}のデータが base64 ではありません", f.label)));
                continue;
            };
            let limit = f.max_bytes.unwrap_or(max_attachment).min(max_attachment);
            if bytes.is_empty() || bytes.len() > limit {
                errors.push((f.name.clone(), format!("{}は1バイト以上{}バイト以下にしてください（{}バイト）", f.label, limit, bytes.len())));
                continue;
            }
            let content_type = text("content_type");
            if !f.accept.is_empty() && !f.accept.contains(&content_type) {
                errors.push((f.name.clone(), format!("{}の形式 {} は受け付けていません（{}）", f.label, content_type, f.accept.join("、"))));
                continue;
            }
            out.files.insert(f.name.clone(), Attachment { name: text("name"), content_type, bytes });
            continue;
        }
        let value = match raw {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.trim().to_string(),
            Some(Value::Number(n)) => n.to_string(),
            Some(other) => other.to_string(),
        };
        if value.is_empty() {
            if f.required {
                errors.push((f.name.clone(), format!("{}を入力してください", f.label)));
            }
            continue;
        }
        if value.chars().any(char::is_control) {
            errors.push((f.name.clone(), format!("{}に制御文字は使えません", f.label)));
            continue;
        }
        let max_len = f.max_length.unwrap_or(if f.kind == FieldKind::Address { 200 } else { 1000 });
        if value.chars().count() > max_len {
            errors.push((f.name.clone(), format!("{}は{}文字以内で入力してください", f.label, max_len)));
            continue;
        }
        let problem = match f.kind {
            FieldKind::Kana if !is_kana(&value) => Some("全角カタカナで入力してください".to_string()),
            FieldKind::Date if !valid_date(&value) => Some("日付を YYYY-MM-DD で入力してください".to_string()),
            FieldKind::PostalCode => {
                let digits: String = value.chars().filter(|c| *c != '-').collect();
                if digits.len() == 7 && digits.bytes().all(|b| b.is_ascii_digit()) {
                    out.values.insert(f.name.clone(), digits);
                    continue;
                }
                Some("7桁の数字で入力してください".to_string())
            }
            FieldKind::Money => match value.replace(',', "").parse::<i64>() {
                Ok(n) if n < 0 => Some("0円以上で入力してください".to_string()),
                Ok(n) if f.min.is_some_and(|m| n < m) || f.max.is_some_and(|m| n > m) => {
                    Some(format!("{}円から{}円の範囲で入力してください", f.min.unwrap_or(0), f.max.map(|m| m.to_string()).unwrap_or("上限なし".into())))
                }
                Ok(n) => {
                    out.values.insert(f.name.clone(), n.to_string());
                    continue;
                }
                Err(_) => Some("円単位の整数で入力してください".to_string()),
            },
            FieldKind::Choice if !f.choices.contains(&value) => Some(format!("{}から選んでください", f.choices.join("、"))),
            _ => None,
        };
        let problem = problem.or_else(|| {
            let pattern = f.pattern.as_ref()?;
            let re = regex_lite::Regex::new(pattern).ok()?;
            (!re.is_match(&value)).then(|| "形式が正しくありません".to_string())
        });
        match problem {
            Some(p) => errors.push((f.name.clone(), format!("{}：{p}", f.label))),
            None => {
                out.values.insert(f.name.clone(), value);
            }
        }
    }
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

/// The 児童手当 認定請求 procedure, shipped as data and installed as version 1 on first use.
pub fn builtin_child_allowance_claim() -> FormDef {
    serde_json::from_str(include_str!("../forms/child-allowance-claim.json")).expect("the built-in form is valid JSON")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn form() -> FormDef {
        builtin_child_allowance_claim()
    }

    fn good() -> Map<String, Value> {
        json!({"name": "山田 花子", "name_kana": "ヤマダ　ハナコ", "birth_date": "1990-04-01", "postal_code": "100-0001",
               "address": "東京都千代田区千代田1-1", "addressee_number": "1000000001", "pension": "厚生年金"})
        .as_object()
        .unwrap()
        .clone()
    }

    #[test]
    fn the_builtin_claim_form_is_a_valid_definition() {
        assert_eq!(form().check(), Ok(()));
        assert_eq!(form().handoff.as_deref(), Some("child-allowance-claim"));
    }

    #[test]
    fn good_values_pass_and_are_normalised() {
        let v = validate(&form(), &good(), 1 << 20).unwrap();
        assert_eq!(v.values["postal_code"], "1000001");
        assert!(!v.values.contains_key("event_date"));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut bad = good();
        bad.insert("name_kana".into(), json!("やまだ"));
        bad.insert("birth_date".into(), json!("1990-02-30"));
        bad.insert("postal_code".into(), json!("12345"));
        bad.insert("pension".into(), json!("私的年金"));
        bad.insert("supported_children".into(), json!("1,x"));
        bad.remove("address");
        let errors = validate(&form(), &bad, 1 << 20).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, vec!["name_kana", "birth_date", "postal_code", "address", "supported_children", "pension"], "{errors:?}");
    }

    #[test]
    fn attachments_are_checked_for_type_and_size() {
        use base64::Engine;
        let data = |n: usize| base64::engine::general_purpose::STANDARD.encode(vec![b'%'; n]);
        let mut with_file = good();
        with_file.insert("confirmation".into(), json!({"name": "確認書.pdf", "content_type": "application/pdf", "data": data(100)}));
        assert_eq!(validate(&form(), &with_file, 1 << 20).unwrap().files["confirmation"].bytes.len(), 100);
        with_file.insert("confirmation".into(), json!({"name": "a.exe", "content_type": "application/x-msdownload", "data": data(100)}));
        assert!(validate(&form(), &with_file, 1 << 20).unwrap_err()[0].1.contains("形式"));
        with_file.insert("confirmation".into(), json!({"name": "big.pdf", "content_type": "application/pdf", "data": data(2_000)}));
        assert!(validate(&form(), &with_file, 1_000).unwrap_err()[0].1.contains("1000バイト以下"));
    }

    #[test]
    fn money_limits_and_definition_checks() {
        let def = FormDef {
            id: "fee".into(),
            version: 0,
            title: "手数料".into(),
            description: String::new(),
            handoff: None,
            fields: vec![Field { name: "amount".into(), label: "金額".into(), kind: FieldKind::Money, required: true, max_length: None, min: Some(100), max: Some(10_000), pattern: None, choices: vec![], prefill: None, accept: vec![], max_bytes: None }],
        };
        assert!(def.check().is_ok());
        let m = |v: &str| json!({"amount": v}).as_object().unwrap().clone();
        assert_eq!(validate(&def, &m("1,000"), 0).unwrap().values["amount"], "1000");
        assert!(validate(&def, &m("99"), 0).is_err());
        assert!(validate(&def, &m("10001"), 0).is_err());
        assert!(validate(&def, &m("-1"), 0).is_err());
        let mut dup = def.clone();
        dup.fields.push(dup.fields[0].clone());
        assert!(dup.check().unwrap_err().contains("unique"));
        let mut bad_pattern = def;
        bad_pattern.fields[0].pattern = Some("(".into());
        assert!(bad_pattern.check().unwrap_err().contains("pattern"));
    }
}
