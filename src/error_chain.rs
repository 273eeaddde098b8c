//! One line for an error and its causes, the same everywhere an error is shown (the CLI's
//! `error: ` lines, delivery failures, a router that cannot be reached); and many errors
//! shown one per line.

/// An error followed by its causes, `: `-separated: hyper-util's errors say only "client
/// error (Connect)", their causes say why. Many error types also print their cause in their
/// own message; a cause already at the end of the text is not repeated.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = String::new();
    for cause in std::iter::successors(Some(error), |e| e.source()) {
        let part = cause.to_string();
        if text.ends_with(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// Every problem found (in a pipeline, in a file of tests), one per line: the CLI writes
/// `error: ` before the first, and this before each of the others.
#[derive(Debug)]
pub struct ErrorLines<E>(pub Vec<E>);

impl<E: std::fmt::Display> std::fmt::Display for ErrorLines<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\nerror: ")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl<E: std::fmt::Debug + std::fmt::Display> std::error::Error for ErrorLines<E> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_chain_names_every_cause() {
        #[derive(Debug, thiserror::Error)]
        #[error("client error (Connect)")]
        struct Outer(#[source] std::io::Error);
        let error = Outer(std::io::Error::other("connection refused"));
        assert_eq!(
            error_chain(&error),
            "client error (Connect): connection refused"
        );
    }

    #[test]
    fn a_cause_its_parent_already_printed_is_not_repeated() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot bind 127.0.0.1:1: {0}")]
        struct Bind(#[source] std::io::Error);
        let error = Bind(std::io::Error::other("address already in use"));
        assert_eq!(
            error_chain(&error),
            "cannot bind 127.0.0.1:1: address already in use"
        );
    }
}
