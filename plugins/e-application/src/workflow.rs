//! The status model of municipal e-applications (RULES.md): submitted → received → in
//! review → completed, with returned-for-correction, rejected and withdrawn branches. Who
//! may move an application where.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// 送信済
    Submitted,
    /// 受付
    Received,
    /// 処理中
    InReview,
    /// 処理完了
    Completed,
    /// 差し戻し（補正）
    Returned,
    /// 却下
    Rejected,
    /// 取下げ
    Withdrawn,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Submitted => "送信済",
            Status::Received => "受付",
            Status::InReview => "処理中",
            Status::Completed => "処理完了",
            Status::Returned => "差し戻し",
            Status::Rejected => "却下",
            Status::Withdrawn => "取下げ",
        }
    }

    /// The name the API and forms use (`in-review`).
    pub fn key(self) -> &'static str {
        match self {
            Status::Submitted => "submitted",
            Status::Received => "received",
            Status::InReview => "in-review",
            Status::Completed => "completed",
            Status::Returned => "returned",
            Status::Rejected => "rejected",
            Status::Withdrawn => "withdrawn",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(self, Status::Completed | Status::Rejected | Status::Withdrawn)
    }
}

/// Who asks for a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    Applicant,
    Staff,
}

/// Whether `actor` may move an application from `from` to `to`, and whether a comment is
/// required; `Err` says why not.
pub fn transition(actor: Actor, from: Status, to: Status) -> Result<bool, String> {
    use Status::*;
    let allowed = match actor {
        Actor::Staff => matches!(
            (from, to),
            (Submitted, Received) | (Received, InReview) | (InReview, Completed) | (Received | InReview, Returned) | (Received | InReview, Rejected)
        ),
        Actor::Applicant => matches!((from, to), (Submitted | Received | InReview | Returned, Withdrawn) | (Returned, Submitted)),
    };
    if !allowed {
        return Err(format!("「{}」から「{}」には変更できません", from.label(), to.label()));
    }
    Ok(matches!(to, Returned | Rejected))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Status::*;

    #[test]
    fn keys_are_the_serialised_names() {
        for s in [Submitted, Received, InReview, Completed, Returned, Rejected, Withdrawn] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.key());
        }
    }

    #[test]
    fn staff_follow_the_main_line() {
        assert_eq!(transition(Actor::Staff, Submitted, Received), Ok(false));
        assert_eq!(transition(Actor::Staff, Received, InReview), Ok(false));
        assert_eq!(transition(Actor::Staff, InReview, Completed), Ok(false));
        assert!(transition(Actor::Staff, Submitted, Completed).is_err(), "no skipping receipt");
        assert!(transition(Actor::Staff, Completed, InReview).is_err(), "completed is final");
    }

    #[test]
    fn returns_and_rejections_need_a_comment() {
        assert_eq!(transition(Actor::Staff, InReview, Returned), Ok(true));
        assert_eq!(transition(Actor::Staff, Received, Rejected), Ok(true));
        assert!(transition(Actor::Staff, Submitted, Rejected).is_err(), "receive it first");
    }

    #[test]
    fn applicants_withdraw_or_resubmit() {
        assert_eq!(transition(Actor::Applicant, Returned, Submitted), Ok(false));
        assert_eq!(transition(Actor::Applicant, InReview, Withdrawn), Ok(false));
        assert!(transition(Actor::Applicant, Completed, Withdrawn).is_err());
        assert!(transition(Actor::Applicant, Submitted, Received).is_err(), "applicants do not receive");
        assert!(transition(Actor::Staff, Submitted, Withdrawn).is_err(), "staff do not withdraw for them");
    }
}
