//! The query tree translated to tantivy queries, and the time bounds of partitions.

use std::ops::Bound;

use tantivy::query::doc_predicate_query::{DocPredicateQuery, FunctionPredicate};
use tantivy::query::{
    AllQuery, BooleanQuery, Occur, PhraseQuery, Query as TantivyQuery, RangeQuery, RegexQuery,
    TermQuery,
};
use tantivy::schema::IndexRecordOption;
use tantivy::tokenizer::{LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer};
use tantivy::{DocId, SegmentReader, Term};

use crate::event::fields;
use crate::store::index::{Fields, Partition};
use crate::store::query::Query;
use crate::store::StoreError;

fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .build()
}

fn message_terms(fields: &Fields, text: &str) -> Vec<Term> {
    let mut analyzer = analyzer();
    let mut stream = analyzer.token_stream(text);
    let mut terms = Vec::new();
    while stream.advance() {
        terms.push(Term::from_field_text(fields.message, &stream.token().text));
    }
    terms
}

fn glob_regex(pattern: &str) -> String {
    let mut out = String::new();
    for c in pattern.chars() {
        match c {
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            c => out.push_str(&regex::escape(&c.to_string())),
        }
    }
    out
}

/// The tantivy query for `query` (no time range).
pub fn translate(fields: &Fields, query: &Query) -> Result<Box<dyn TantivyQuery>, StoreError> {
    Ok(match query {
        Query::All => Box::new(AllQuery),
        Query::And(parts) => {
            // `a -b` becomes one boolean query with a must-not clause, rather than a nested
            // "everything except b" (cheaper, and the shape tantivy's scorers expect).
            let positive = parts.iter().any(|q| !matches!(q, Query::Not(_)));
            let clauses = parts
                .iter()
                .map(|q| match q {
                    Query::Not(inner) if positive => {
                        Ok((Occur::MustNot, exclusion(fields, inner)?))
                    }
                    q => Ok((Occur::Must, translate(fields, q)?)),
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            Box::new(BooleanQuery::new(clauses))
        }
        Query::Or(parts) => {
            let clauses = parts
                .iter()
                .map(|q| Ok((Occur::Should, translate(fields, q)?)))
                .collect::<Result<Vec<_>, StoreError>>()?;
            Box::new(BooleanQuery::new(clauses))
        }
        Query::Not(inner) => Box::new(BooleanQuery::new(vec![
            (Occur::Must, Box::new(AllQuery)),
            (Occur::MustNot, exclusion(fields, inner)?),
        ])),
        Query::Term { field, value } | Query::Phrase { field, text: value } => {
            match field.as_deref() {
                None | Some(fields::MESSAGE) => {
                    let mut terms = message_terms(fields, value);
                    match terms.len() {
                        0 => Box::new(AllQuery),
                        1 => Box::new(TermQuery::new(terms.remove(0), IndexRecordOption::Basic)),
                        _ => Box::new(PhraseQuery::new(terms)),
                    }
                }
                Some(name) => Box::new(TermQuery::new(
                    keyword_term(fields, name, value),
                    IndexRecordOption::Basic,
                )),
            }
        }
        Query::Wildcard { field, pattern } => {
            let (field, regex) = match field.as_deref() {
                None | Some(fields::MESSAGE) => {
                    (fields.message, glob_regex(&pattern.to_lowercase()))
                }
                Some(name) => match fields.keyword(name) {
                    Some(f) => (f, glob_regex(pattern)),
                    None => return kv_wildcard(name, pattern),
                },
            };
            Box::new(
                RegexQuery::from_pattern(&regex, field)
                    .map_err(|e| StoreError::BadRequest(format!("bad wildcard: {e}")))?,
            )
        }
        Query::Range {
            field,
            lower,
            upper,
        } => {
            let term = |n: f64| {
                let mut t = Term::from_field_json_path(fields.num, field, false);
                t.append_type_and_fast_value(n);
                t
            };
            let lower = match (lower, upper) {
                (Bound::Unbounded, Bound::Unbounded) => Bound::Included(f64::MIN),
                _ => *lower,
            };
            Box::new(RangeQuery::new(lower.map(term), upper.map(term)))
        }
    })
}

/// `name:pattern` for a field of `_kv`. `_kv` is a column without an inverted index (see
/// `index::kv_options`), so each segment finds the matching terms in its column dictionary
/// (only the range that starts with `name=` and the pattern's literal prefix, checked against
/// the pattern unless it is a plain prefix), then the documents holding them in one batch
/// scan of the column's ordinals between the first and last match. Partitions written while
/// `_kv` still had an inverted index have the same column, so this reads them too.
fn kv_wildcard(name: &str, pattern: &str) -> Result<Box<dyn TantivyQuery>, StoreError> {
    let literal: String = pattern
        .chars()
        .take_while(|c| !matches!(c, '*' | '?'))
        .collect();
    let key_prefix = format!("{name}={literal}");
    let plain_prefix = pattern.len() == literal.len() + 1 && pattern.ends_with('*');
    let regex = if plain_prefix {
        None
    } else {
        let regex = format!("^{}={}$", regex::escape(name), glob_regex(pattern));
        Some(
            regex::bytes::Regex::new(&regex)
                .map_err(|e| StoreError::BadRequest(format!("bad wildcard: {e}")))?,
        )
    };
    let predicate = FunctionPredicate::from(move |segment: &SegmentReader| {
        let max_doc = segment.max_doc();
        let mut matched = vec![0u64; (max_doc as usize).div_ceil(64)];
        if let Some(column) = segment.fast_fields().str(KV_FIELD)? {
            // Ordinals come out of the dictionary in order, so the list is sorted.
            let mut ords = Vec::new();
            let mut terms = column
                .dictionary()
                .prefix_range(key_prefix.as_bytes())
                .into_stream()?;
            while terms.advance() {
                if regex.as_ref().is_none_or(|r| r.is_match(terms.key())) {
                    ords.push(terms.term_ord());
                }
            }
            if let (Some(&first), Some(&last)) = (ords.first(), ords.last()) {
                let contiguous = (last - first) as usize + 1 == ords.len();
                let mut candidates = Vec::new();
                column
                    .ords()
                    .get_docids_for_value_range(first..=last, 0..max_doc, &mut candidates);
                for doc in candidates {
                    if contiguous
                        || column
                            .term_ords(doc)
                            .any(|ord| ords.binary_search(&ord).is_ok())
                    {
                        matched[doc as usize / 64] |= 1 << (doc % 64);
                    }
                }
            }
        }
        Ok(move |doc: DocId| matched[doc as usize / 64] & (1 << (doc % 64)) != 0)
    });
    Ok(Box::new(DocPredicateQuery::from(predicate)))
}

const KV_FIELD: &str = "_kv";

/// A query used as a must-not clause. tantivy 0.27's phrase scorer cannot be an exclusion
/// set directly (it may be asked to seek backwards, which it asserts against), so excluded
/// message phrases go through a union, whose seeking is always safe.
fn exclusion(fields: &Fields, inner: &Query) -> Result<Box<dyn TantivyQuery>, StoreError> {
    let query = translate(fields, inner)?;
    if !has_message_phrase(inner) {
        return Ok(query);
    }
    Ok(Box::new(BooleanQuery::new(vec![
        (Occur::Should, query.box_clone()),
        (Occur::Should, query),
    ])))
}

/// Whether a message phrase (several tokens) is anywhere in `query`.
fn has_message_phrase(query: &Query) -> bool {
    match query {
        Query::Term { field, value } | Query::Phrase { field, text: value } => {
            matches!(field.as_deref(), None | Some(fields::MESSAGE))
                && super::super::query::tokens(value).nth(1).is_some()
        }
        Query::And(parts) | Query::Or(parts) => parts.iter().any(has_message_phrase),
        Query::Not(inner) => has_message_phrase(inner),
        Query::All | Query::Wildcard { .. } | Query::Range { .. } => false,
    }
}

fn keyword_term(fields: &Fields, name: &str, value: &str) -> Term {
    match fields.keyword(name) {
        Some(f) => Term::from_field_text(f, value),
        None => Term::from_field_text(fields.kv, &format!("{name}={value}")),
    }
}

/// The query restricted to event times in `[from, to)` (nanoseconds).
pub(super) fn with_time(
    fields: &Fields,
    query: Box<dyn TantivyQuery>,
    from: Option<i64>,
    to: Option<i64>,
) -> Box<dyn TantivyQuery> {
    if from.is_none() && to.is_none() {
        return query;
    }
    let term = |n: i64| Term::from_field_i64(fields.timestamp, n);
    let range = RangeQuery::new(
        from.map_or(Bound::Unbounded, |f| Bound::Included(term(f))),
        to.map_or(Bound::Unbounded, |t| Bound::Excluded(term(t))),
    );
    Box::new(BooleanQuery::new(vec![
        (Occur::Must, query),
        (Occur::Must, Box::new(range)),
    ]))
}

/// Lowest and highest event time, when there are events.
pub(super) type TimeBounds = Option<(i64, i64)>;

/// Lowest and highest event time in a partition's committed segments.
pub(super) fn time_bounds(partition: &Partition) -> Option<(i64, i64)> {
    let searcher = partition.reader.searcher();
    let mut bounds: Option<(i64, i64)> = None;
    for segment in searcher.segment_readers() {
        if segment.num_docs() == 0 {
            continue;
        }
        let Ok(column) = segment.fast_fields().i64(fields::TIMESTAMP) else {
            continue;
        };
        let (lo, hi) = (column.min_value(), column.max_value());
        bounds = Some(bounds.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
    }
    bounds
}

pub(super) fn overlaps(bounds: Option<(i64, i64)>, from: Option<i64>, to: Option<i64>) -> bool {
    let Some((lo, hi)) = bounds else { return false };
    from.is_none_or(|f| hi >= f) && to.is_none_or(|t| lo < t)
}

/// Highest `_seq` in a partition, to continue numbering after a restart.
pub fn max_seq(partition: &Partition) -> Option<u64> {
    let searcher = partition.reader.searcher();
    searcher
        .segment_readers()
        .iter()
        .filter(|s| s.num_docs() > 0)
        .filter_map(|s| s.fast_fields().u64("_seq").ok())
        .map(|c| c.max_value())
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_to_regex() {
        assert_eq!(glob_regex("web*"), "web.*");
        assert_eq!(glob_regex("a.b?"), "a\\.b.");
    }
}
