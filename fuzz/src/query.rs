//! The query language target: `Query::parse` (the language of `sluice query`, `/v1/query`
//! and live tail) on arbitrary text, and `Query::matches`, the tail's evaluation of it.
//!
//! Invariants:
//! - parsing never panics; an error's position lies within the text (or just after it) and
//!   its message is not empty; text longer than `MAX_QUERY_BYTES` is refused;
//! - matching a parsed query never panics on fixed events covering every value type;
//! - `NOT (Q)` and `-(Q)` parse (unless the extra level exceeds the nesting limit) and
//!   match exactly the events `Q` does not; `(Q)`, `(Q) AND (Q)` and `(Q) OR (Q)` match
//!   as `Q`; `(Q) OR NOT (Q)` matches every event (for a query that is not blank: `()` is
//!   refused); the empty query matches every event.

use sluice::store::query::{Query, MAX_QUERY_BYTES};

pub fn query(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let query = match Query::parse(text) {
        Ok(query) => query,
        Err(e) => {
            assert!(
                e.position <= text.len(),
                "position {} in {} bytes",
                e.position,
                text.len()
            );
            assert!(!e.message.is_empty());
            return;
        }
    };
    assert!(
        text.len() <= MAX_QUERY_BYTES,
        "accepted {} bytes",
        text.len()
    );
    let events = crate::condition::events();
    let results: Vec<bool> = events.iter().map(|e| query.matches(e)).collect();
    if text.trim().is_empty() {
        // `()` is refused (empty parentheses), so there is nothing to wrap.
        assert!(
            results.iter().all(|&r| r),
            "the empty query matches everything"
        );
        return;
    }
    let derived = [
        (format!("NOT ({text})"), true),
        (format!("-({text})"), true),
        (format!("({text})"), false),
        (format!("({text}) AND ({text})"), false),
        (format!("({text}) OR ({text})"), false),
    ];
    for (derived_text, negated) in derived {
        match Query::parse(&derived_text) {
            Ok(derived) => {
                for (event, &result) in events.iter().zip(&results) {
                    assert_eq!(
                        derived.matches(event),
                        result != negated,
                        "{derived_text:?} on {:?}",
                        event.fields
                    );
                }
            }
            Err(e) => assert!(
                e.message.contains("nested too deeply") || derived_text.len() > MAX_QUERY_BYTES,
                "{text:?} parses but {derived_text:?} does not: {e}"
            ),
        }
    }
    if let Ok(tautology) = Query::parse(&format!("({text}) OR NOT ({text})")) {
        assert!(events.iter().all(|e| tautology.matches(e)));
    }
}
