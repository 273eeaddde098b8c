use super::*;
use crate::event::test_event;

fn build(id: &str, toml_src: &str) -> Result<Redact, FieldError> {
    let config: RedactConfig =
        toml::from_str(toml_src).unwrap_or_else(|e| panic!("bad test config: {e}"));
    config.build(&TransformContext { id: id.into() })
}

fn masked(redact: &Redact, text: &str) -> String {
    match redact.redact(text.as_bytes()) {
        Some(clean) => String::from_utf8(clean).expect("utf-8 stays utf-8"),
        None => text.to_string(),
    }
}

#[test]
fn each_detector_finds_its_kind() {
    let redact = build("redact_finds", "").unwrap();
    let cases = [
        (
            "paid with 4111 1111 1111 1111 today",
            "paid with [REDACTED:credit_card] today",
        ),
        ("card=4111111111111111;", "card=[REDACTED:credit_card];"),
        ("amex 3782-822463-10005 ok", "amex [REDACTED:credit_card] ok"),
        ("mc 5555555555554444", "mc [REDACTED:credit_card]"),
        (
            "mail jane.doe+x@example.co.uk now",
            "mail [REDACTED:email] now",
        ),
        ("from 10.1.2.3:8080", "from [REDACTED:ipv4]:8080"),
        (
            "from 2001:db8::8a2e:370:7334 and ::1",
            "from [REDACTED:ipv6] and [REDACTED:ipv6]",
        ),
        (
            "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk end",
            "token [REDACTED:jwt] end",
        ),
        (
            "Authorization: Bearer abc123DEF456ghi789",
            "Authorization: Bearer [REDACTED:bearer_token]",
        ),
        (
            "authorization: BEARER abc123DEF456ghi789",
            "authorization: BEARER [REDACTED:bearer_token]",
        ),
        (
            "GET https://admin:s3cret@db.internal/x",
            "GET https://[REDACTED:basic_auth_url]@db.internal/x",
        ),
        ("key AKIAIOSFODNN7EXAMPLE used", "key [REDACTED:aws_access_key] used"),
        (
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nIBAAK\n-----END RSA PRIVATE KEY----- after",
            "[REDACTED:private_key] after",
        ),
        (
            "two 10.0.0.1 10.0.0.2",
            "two [REDACTED:ipv4] [REDACTED:ipv4]",
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(masked(&redact, input), expected, "{input}");
    }
}

/// What looks like a secret but is not one is left alone.
#[test]
fn look_alikes_are_left_alone() {
    let redact = build("redact_alike", "").unwrap();
    for input in [
        "order 4111111111111112 shipped",     // Luhn fails
        "order 1234567812345670 shipped",     // Luhn passes, no issuer starts with 1
        "order id 41111111111111110000 done", // 20 digits: longer than any card
        "version 2.14.1 released",
        "upgrade to 1.2.3.4.5",
        "tag v1.2.3.4 built",
        "at 12:30:45.123 on 2026-12-06",
        "mac de:ad:be:ef:00:01",
        "octets 300.1.2.3",
        "a user@localhost address",
        "the bearer of bad news",
        "see https://example.com/path@v2",
        "AKIA is a prefix, AKIAshort",
        "plain text with error in it",
    ] {
        assert_eq!(masked(&redact, input), input, "{input}");
    }
}

#[test]
fn replacements() {
    let partial = build("redact_partial", "replacement = 'partial'").unwrap();
    assert_eq!(masked(&partial, "card 4111111111111111"), "card ****1111");
    let hash = build(
        "redact_hash",
        "replacement = 'hash'\nhash_key = '0123456789abcdef'\ndetectors = ['email']",
    )
    .unwrap();
    let a = masked(&hash, "from jane@example.com");
    let b = masked(&hash, "to jane@example.com");
    let c = masked(&hash, "to john@example.com");
    assert!(a.starts_with("from [email:") && a.ends_with(']'), "{a}");
    assert_eq!(
        a["from ".len()..],
        b["to ".len()..],
        "equal values, equal digests"
    );
    assert_ne!(b, c);
    let other_key = build(
        "redact_hash2",
        "replacement = 'hash'\nhash_key = 'another key, long enough'\ndetectors = ['email']",
    )
    .unwrap();
    assert_ne!(masked(&other_key, "from jane@example.com"), a);
}

#[test]
fn fields_nested_values_and_custom_patterns() {
    let mut redact = build(
        "redact_fields",
        "fields = ['message', 'http.url']\ndetectors = ['email']\npatterns = { order_ref = 'ORD-[0-9]{8}' }",
    )
    .unwrap();
    let event = test_event(
        r#"{"message":"ORD-12345678 for a@b.io","http":{"url":"/u/c@d.io"},"user":"e@f.io"}"#,
    );
    let mut out = Outputs::new(0);
    redact.transform(event, &mut out);
    let fields = &out.default_output()[0].fields;
    assert_eq!(
        fields.get("message").and_then(Value::as_str),
        Some("[REDACTED:order_ref] for [REDACTED:email]")
    );
    let url = FieldPath::parse("http.url").unwrap();
    assert_eq!(
        url.get(fields).and_then(Value::as_str),
        Some("/u/[REDACTED:email]")
    );
    assert_eq!(
        fields.get("user").and_then(Value::as_str),
        Some("e@f.io"),
        "not listed"
    );
    assert_eq!(
        telemetry::counter_value(
            "component_redactions_total",
            &[("component_id", "redact_fields"), ("detector", "order_ref")]
        ),
        1
    );

    // Without `fields`, every string value, in arrays and objects too.
    let mut everywhere = build("redact_everywhere", "detectors = ['email']").unwrap();
    let event = test_event(r#"{"a":["x@y.io",{"b":"z@w.io"}],"n":5}"#);
    let mut out = Outputs::new(0);
    everywhere.transform(event, &mut out);
    let fields = &out.default_output()[0].fields;
    let Some(Value::Array(items)) = fields.get("a") else {
        panic!("{fields:?}")
    };
    assert_eq!(items[0].as_str(), Some("[REDACTED:email]"));
    let Value::Object(inner) = &items[1] else {
        panic!("{items:?}")
    };
    assert_eq!(
        inner.get("b").and_then(Value::as_str),
        Some("[REDACTED:email]")
    );
    assert_eq!(fields.get("n"), Some(&Value::Integer(5)));
}

#[test]
fn bad_settings_name_the_field() {
    let cases = [
        ("detectors = ['passport']", "detectors"),
        ("detectors = []", "detectors"),
        ("replacement = 'hash'", "hash_key"),
        ("replacement = 'hash'\nhash_key = 'short'", "hash_key"),
        ("hash_key = '0123456789abcdef0'", "hash_key"),
        ("patterns = { email = 'x' }", "patterns.email"),
        ("patterns = { bad = '(' }", "patterns.bad"),
        ("fields = ['a b']", "fields"),
    ];
    for (config, field) in cases {
        let error = build("redact_bad", config).unwrap_err();
        assert!(error.to_string().contains(field), "{config}: {error}");
    }
}
