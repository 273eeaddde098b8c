//! One line for an error and its causes, the same everywhere an error is shown (the CLI's
//! `error: ` lines, delivery failures, a router that cannot be reached).

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
