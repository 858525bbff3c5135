//! The lifecycle's decisions, without IO: whether a package may be purged
//! and by which rule, when the automatic purge is due, and the explanation
//! of a package's fate that `GET /v1/packages/{id}/retention` shows.

use serde::{Deserialize, Serialize};

use crate::retention::{DeletionStrategy, RetentionClass, RetentionDuration};
use crate::timestamp::Timestamp;

/// The rules a purge names (`v1.package.purged`'s `rule`). Stable: they
/// are in logs.
pub mod rules {
    /// A `delete` class package, eligible for `purge_after`: purged by the
    /// lifecycle.
    pub const DELETE_AFTER_ELIGIBLE: &str = "delete_after_eligible";
    /// An admin purged an eligible package explicitly, with a reason.
    pub const EXPLICIT: &str = "explicit";
}

/// Why the collector deleted an object (`v1.storage.object_deleted`'s
/// `reason`). Stable: they are in logs.
pub mod deletion_reasons {
    /// Only files of purged packages referred to it.
    pub const PURGED: &str = "purged";
    /// No event referred to it (an upload that crashed or was refused
    /// after its bytes were durable), and it was older than the grace.
    pub const ORPHAN: &str = "orphan";
    /// A staging object an upload left behind (S3), older than the grace.
    pub const STAGING: &str = "staging";
    /// A collector claimed it and stopped before recording its deletion;
    /// a later pass finished the job.
    pub const UNFINISHED: &str = "unfinished_collection";
}

/// What decides whether a package may be purged now.
#[derive(Debug, Clone, Copy)]
pub struct PurgeFacts<'a> {
    /// Its class, as configured.
    pub class: &'a RetentionClass,
    /// Whether it is purged already.
    pub purged: bool,
    /// Legal holds active on it.
    pub active_holds: usize,
    /// When it became eligible for deletion; `None` when it is not.
    pub eligible_at: Option<Timestamp>,
    /// Its expiry.
    pub expires_at: Option<Timestamp>,
}

/// Why a package cannot be purged. Each is a 409 with its own code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PurgeRefusal {
    /// Purged before.
    #[error("the package was purged already")]
    AlreadyPurged,
    /// Its class's strategy is `never`.
    #[error("retention class {0:?} never deletes: its packages cannot be purged")]
    ClassNeverDeletes(String),
    /// A legal hold is active.
    #[error("{0} legal hold(s) active on the package: no purge while a hold is active")]
    Held(usize),
    /// Not (or no longer) eligible for deletion.
    #[error("the package is not eligible for deletion ({0})")]
    NotEligible(String),
}

impl PurgeRefusal {
    /// The problem code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::AlreadyPurged => "package_purged",
            Self::ClassNeverDeletes(_) => "retention_class_never_deletes",
            Self::Held(_) => "package_held",
            Self::NotEligible(_) => "package_not_eligible",
        }
    }
}

/// Whether an admin may purge the package now (every deletion path checks
/// this, under the log lock that records the purge).
pub fn check_purge(facts: &PurgeFacts<'_>) -> Result<(), PurgeRefusal> {
    if facts.purged {
        return Err(PurgeRefusal::AlreadyPurged);
    }
    if facts.class.deletion_strategy == DeletionStrategy::Never {
        return Err(PurgeRefusal::ClassNeverDeletes(facts.class.id.clone()));
    }
    if facts.active_holds > 0 {
        return Err(PurgeRefusal::Held(facts.active_holds));
    }
    if facts.eligible_at.is_none() {
        let why = match facts.expires_at {
            None => "it never expires".to_owned(),
            Some(at) => format!("it expires at {at}, or is not yet swept"),
        };
        return Err(PurgeRefusal::NotEligible(why));
    }
    Ok(())
}

/// When the lifecycle purges the package by itself: only `delete`
/// classes, `purge_after` after eligibility.
pub fn automatic_purge_at(class: &RetentionClass, eligible_at: Timestamp) -> Option<Timestamp> {
    (class.deletion_strategy == DeletionStrategy::Delete)
        .then(|| eligible_at.plus_seconds(class.purge_after.seconds()))
        .flatten()
}

/// Whether the lifecycle purges the package now, without anyone asking.
pub fn automatic_purge_due(facts: &PurgeFacts<'_>, now: Timestamp) -> bool {
    check_purge(facts).is_ok()
        && facts
            .eligible_at
            .and_then(|at| automatic_purge_at(facts.class, at))
            .is_some_and(|due| due <= now)
}

/// An extension, as the explanation tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionFact {
    /// Who.
    pub actor: String,
    /// When.
    pub at: Timestamp,
    /// The new expiry.
    pub new_expires_at: Timestamp,
    /// Why.
    pub reason: String,
}

/// An active hold, as the explanation tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldFact {
    /// Who placed it.
    pub actor: String,
    /// Since when.
    pub since: Timestamp,
    /// Why.
    pub reason: String,
}

/// A purge, as the explanation tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeFact {
    /// Who.
    pub actor: String,
    /// When.
    pub at: Timestamp,
    /// One of [`rules`].
    pub rule: String,
    /// Why.
    pub reason: String,
}

/// Everything the explanation is made of.
#[derive(Debug, Clone)]
pub struct RetentionFacts<'a> {
    /// The package's class, as configured.
    pub class: &'a RetentionClass,
    /// The expiry the class gave at creation.
    pub default_expires_at: Option<Timestamp>,
    /// Extensions, in log order.
    pub extensions: Vec<ExtensionFact>,
    /// Active holds, oldest first.
    pub holds: Vec<HoldFact>,
    /// The expiry now.
    pub expires_at: Option<Timestamp>,
    /// When it became eligible, if it is.
    pub eligible_at: Option<Timestamp>,
    /// The purge, if it happened.
    pub purge: Option<PurgeFact>,
}

/// What one step of an explanation is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// The class and the default it gave.
    Class,
    /// An extension.
    Extension,
    /// An active hold.
    Hold,
    /// Whether the package is eligible for deletion.
    Eligibility,
    /// When the purge is scheduled, or why there is none.
    Schedule,
    /// The purge itself.
    Purge,
}

/// One fact of an explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// What it is about.
    pub kind: StepKind,
    /// The fact in words.
    pub text: String,
    /// When, if it is an act or a date.
    pub at: Option<Timestamp>,
    /// Who acted, if someone did.
    pub actor: Option<String>,
    /// Why, if a reason was given.
    pub reason: Option<String>,
}

/// The facts that decide a package's fate, in order, and one sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// The facts, in the order they decide.
    pub steps: Vec<Step>,
    /// All of it in one readable sentence.
    pub sentence: String,
}

fn day(at: &Timestamp) -> String {
    at.to_string().chars().take(10).collect()
}

fn span(duration: Option<RetentionDuration>) -> String {
    match duration {
        None => "never expires".to_owned(),
        Some(d) if d.seconds() % 86_400 == 0 => match d.seconds() / 86_400 {
            1 => "1 day".to_owned(),
            days => format!("{days} days"),
        },
        Some(d) => format!("{} seconds", d.seconds()),
    }
}

fn step(kind: StepKind, text: String) -> Step {
    Step {
        kind,
        text,
        at: None,
        actor: None,
        reason: None,
    }
}

/// Explains a package's fate: the class, each extension, each active hold,
/// eligibility, the schedule, the purge.
pub fn explain(facts: &RetentionFacts<'_>, now: Timestamp) -> Explanation {
    let class = facts.class;
    let mut steps = Vec::new();
    let class_text = format!(
        "class {} ({}, {})",
        class.id,
        span(class.default_duration),
        class.deletion_strategy.as_str()
    );
    steps.push(Step {
        at: facts.default_expires_at,
        ..step(
            StepKind::Class,
            match facts.default_expires_at {
                Some(at) => format!("{class_text}: kept until {at} by default"),
                None => format!("{class_text}: kept forever by default"),
            },
        )
    });
    let mut kept = vec![format!(
        "class {} ({})",
        class.id,
        span(class.default_duration)
    )];
    for extension in &facts.extensions {
        steps.push(Step {
            at: Some(extension.at),
            actor: Some(extension.actor.clone()),
            reason: Some(extension.reason.clone()),
            ..step(
                StepKind::Extension,
                format!(
                    "extended to {} by {} on {}",
                    extension.new_expires_at,
                    extension.actor,
                    day(&extension.at)
                ),
            )
        });
        kept.push(format!(
            "extended by {} on {} ('{}')",
            extension.actor,
            day(&extension.at),
            extension.reason
        ));
    }
    let mut held = Vec::new();
    for hold in &facts.holds {
        steps.push(Step {
            at: Some(hold.since),
            actor: Some(hold.actor.clone()),
            reason: Some(hold.reason.clone()),
            ..step(
                StepKind::Hold,
                format!("held by {} since {}", hold.actor, day(&hold.since)),
            )
        });
        held.push(format!("since {} ('{}')", day(&hold.since), hold.reason));
    }
    let eligibility = match (facts.eligible_at, facts.expires_at) {
        (Some(at), _) => Step {
            at: Some(at),
            ..step(
                StepKind::Eligibility,
                format!("eligible for deletion since {at}"),
            )
        },
        (None, None) => step(
            StepKind::Eligibility,
            "not eligible for deletion: it never expires".into(),
        ),
        (None, Some(at)) if !facts.holds.is_empty() => step(
            StepKind::Eligibility,
            format!("not eligible for deletion while held (expiry {at})"),
        ),
        (None, Some(at)) if at <= now => step(
            StepKind::Eligibility,
            format!("expired at {at}; eligible at the next sweep"),
        ),
        (None, Some(at)) => Step {
            at: Some(at),
            ..step(
                StepKind::Eligibility,
                format!("not eligible for deletion before {at}"),
            )
        },
    };
    steps.push(eligibility);
    let (schedule, schedule_at) = match (&facts.purge, class.deletion_strategy) {
        (Some(_), _) => ("purged; nothing is scheduled".to_owned(), None),
        (None, DeletionStrategy::Never) => (
            format!("no purge: class {} never deletes", class.id),
            None,
        ),
        (None, _) if !facts.holds.is_empty() => (
            "no purge while a hold is active".to_owned(),
            None,
        ),
        (None, DeletionStrategy::ManualReview) => (
            match facts.eligible_at {
                Some(_) => "waiting for an admin's review: purged only when an admin purges it".to_owned(),
                None => "once eligible, it waits for an admin's review: purged only when an admin purges it".to_owned(),
            },
            None,
        ),
        (None, DeletionStrategy::Delete) => match facts.eligible_at.and_then(|at| automatic_purge_at(class, at)) {
            Some(due) => (format!("purged automatically at {due} (purge_after {})", class.purge_after), Some(due)),
            None => (
                format!(
                    "purged automatically {} after it becomes eligible (purge_after)",
                    class.purge_after
                ),
                None,
            ),
        },
    };
    steps.push(Step {
        at: schedule_at,
        ..step(StepKind::Schedule, schedule.clone())
    });
    if let Some(purge) = &facts.purge {
        steps.push(Step {
            at: Some(purge.at),
            actor: Some(purge.actor.clone()),
            reason: Some(purge.reason.clone()),
            ..step(
                StepKind::Purge,
                format!(
                    "purged by {} at {} under rule {}",
                    purge.actor, purge.at, purge.rule
                ),
            )
        });
    }

    let head = match (&facts.purge, facts.expires_at) {
        (Some(purge), _) => format!(
            "purged on {} by {} (rule {}, '{}')",
            day(&purge.at),
            purge.actor,
            purge.rule,
            purge.reason
        ),
        (None, Some(at)) => format!("kept until {}", day(&at)),
        (None, None) => "kept forever".to_owned(),
    };
    let mut sentence = format!("{head}: {}", kept.join(", "));
    if facts.purge.is_none() {
        if !held.is_empty() {
            sentence.push_str(&format!(
                "; held {}, so it will not be purged while {} active",
                held.join(" and "),
                if held.len() == 1 {
                    "the hold is"
                } else {
                    "a hold is"
                }
            ));
        } else {
            if let Some(at) = facts.eligible_at {
                sentence.push_str(&format!("; eligible for deletion since {}", day(&at)));
            }
            sentence.push_str(&format!("; {schedule}"));
        }
    }
    Explanation { steps, sentence }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retention::default_retention_classes;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn class(id: &str) -> RetentionClass {
        default_retention_classes()
            .into_iter()
            .find(|c| c.id == id)
            .unwrap()
    }

    fn facts(class: &RetentionClass) -> PurgeFacts<'_> {
        PurgeFacts {
            class,
            purged: false,
            active_holds: 0,
            eligible_at: Some(at("2026-01-01T00:00:00Z")),
            expires_at: Some(at("2026-01-01T00:00:00Z")),
        }
    }

    #[test]
    fn purge_refusals_say_which() {
        let standard = class("standard");
        assert_eq!(check_purge(&facts(&standard)), Ok(()));
        let held = PurgeFacts {
            active_holds: 2,
            ..facts(&standard)
        };
        assert_eq!(check_purge(&held).unwrap_err().code(), "package_held");
        let not_eligible = PurgeFacts {
            eligible_at: None,
            ..facts(&standard)
        };
        assert_eq!(
            check_purge(&not_eligible).unwrap_err().code(),
            "package_not_eligible"
        );
        let permanent = class("permanent");
        assert_eq!(
            check_purge(&facts(&permanent)).unwrap_err().code(),
            "retention_class_never_deletes"
        );
        let purged = PurgeFacts {
            purged: true,
            ..held
        };
        assert_eq!(check_purge(&purged).unwrap_err().code(), "package_purged");
    }

    #[test]
    fn only_delete_classes_purge_by_themselves_after_purge_after() {
        let standard = class("standard");
        let eligible = facts(&standard);
        assert!(!automatic_purge_due(&eligible, at("2026-01-07T23:59:59Z")));
        assert!(automatic_purge_due(&eligible, at("2026-01-08T00:00:00Z")));
        let held = PurgeFacts {
            active_holds: 1,
            ..eligible
        };
        assert!(!automatic_purge_due(&held, at("2030-01-01T00:00:00Z")));
        let long_term = class("long-term");
        assert!(!automatic_purge_due(
            &facts(&long_term),
            at("2099-01-01T00:00:00Z")
        ));
        let zero = RetentionClass {
            purge_after: RetentionDuration::from_seconds(0),
            ..standard
        };
        assert!(automatic_purge_due(
            &facts(&zero),
            at("2026-01-01T00:00:00Z")
        ));
    }

    #[test]
    fn the_sentence_tells_extensions_and_holds() {
        let standard = class("standard");
        let explanation = explain(
            &RetentionFacts {
                class: &standard,
                default_expires_at: Some(at("2027-03-01T00:00:00Z")),
                extensions: vec![ExtensionFact {
                    actor: "alice".into(),
                    at: at("2026-12-04T10:00:00Z"),
                    new_expires_at: at("2030-01-01T00:00:00Z"),
                    reason: "audit".into(),
                }],
                holds: vec![HoldFact {
                    actor: "bob".into(),
                    since: at("2026-12-05T00:00:00Z"),
                    reason: "litigation".into(),
                }],
                expires_at: Some(at("2030-01-01T00:00:00Z")),
                eligible_at: None,
                purge: None,
            },
            at("2026-12-06T00:00:00Z"),
        );
        assert_eq!(
            explanation.sentence,
            "kept until 2030-01-01: class standard (90 days), extended by alice on 2026-12-04 \
             ('audit'); held since 2026-12-05 ('litigation'), so it will not be purged while \
             the hold is active"
        );
        let kinds: Vec<StepKind> = explanation.steps.iter().map(|s| s.kind).collect();
        assert_eq!(
            kinds,
            [
                StepKind::Class,
                StepKind::Extension,
                StepKind::Hold,
                StepKind::Eligibility,
                StepKind::Schedule
            ]
        );
    }

    #[test]
    fn the_schedule_follows_the_strategy() {
        let standard = class("standard");
        let base = RetentionFacts {
            class: &standard,
            default_expires_at: Some(at("2026-01-01T00:00:00Z")),
            extensions: vec![],
            holds: vec![],
            expires_at: Some(at("2026-01-01T00:00:00Z")),
            eligible_at: Some(at("2026-01-02T00:00:00Z")),
            purge: None,
        };
        let now = at("2026-01-03T00:00:00Z");
        let sentence = explain(&base, now).sentence;
        assert!(
            sentence.contains("purged automatically at 2026-01-09T00:00:00.000000Z"),
            "{sentence}"
        );
        let long_term = class("long-term");
        let review = RetentionFacts {
            class: &long_term,
            ..base.clone()
        };
        assert!(explain(&review, now).sentence.contains("admin's review"));
        let purged = RetentionFacts {
            purge: Some(PurgeFact {
                actor: "lifecycle".into(),
                at: at("2026-01-09T00:00:00Z"),
                rule: rules::DELETE_AFTER_ELIGIBLE.into(),
                reason: "retention over".into(),
            }),
            ..base
        };
        let explanation = explain(&purged, now);
        assert!(explanation
            .sentence
            .starts_with("purged on 2026-01-09 by lifecycle"));
        assert_eq!(explanation.steps.last().unwrap().kind, StepKind::Purge);
    }
}
