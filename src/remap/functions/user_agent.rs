//! `parse_user_agent`: browser, operating system and device kind from a `User-Agent`
//! header, by a small built-in rule set covering the common browsers, systems and bots
//! (not a full ua-parser database: anything else is `Other`).
//!
//! The result is `{browser: {family, version}, os: {family, version}, device: {type}}`,
//! `version` being `null` when unknown and `type` one of `bot`, `mobile`, `tablet`,
//! `desktop`, `other`.

use super::{string_arg, Arg, CallResult};
use crate::event::{Map, Value};

/// Bots and tools, by a marker in the string, with the family reported.
const BOTS: &[(&str, &str)] = &[
    ("Googlebot/", "Googlebot"),
    ("bingbot/", "Bingbot"),
    ("YandexBot/", "YandexBot"),
    ("DuckDuckBot", "DuckDuckBot"),
    ("Baiduspider", "Baiduspider"),
    ("facebookexternalhit/", "Facebook"),
    ("Slackbot", "Slackbot"),
    ("curl/", "curl"),
    ("Wget/", "Wget"),
    ("python-requests/", "Python Requests"),
    ("Go-http-client/", "Go http client"),
    ("okhttp/", "OkHttp"),
    ("kube-probe/", "kube-probe"),
    ("Prometheus/", "Prometheus"),
];

/// Browsers, first match wins: the order matters because Edge and Opera also say
/// `Chrome/`, and Chrome also says `Safari/`.
const BROWSERS: &[(&str, &str)] = &[
    ("Edg/", "Edge"),
    ("EdgA/", "Edge"),
    ("EdgiOS/", "Edge"),
    ("OPR/", "Opera"),
    ("SamsungBrowser/", "Samsung Internet"),
    ("YaBrowser/", "Yandex Browser"),
    ("Firefox/", "Firefox"),
    ("FxiOS/", "Firefox"),
    ("CriOS/", "Chrome"),
    ("Chrome/", "Chrome"),
    ("Version/", "Safari"),
    ("MSIE ", "Internet Explorer"),
    ("rv:", "Internet Explorer"),
];

pub(super) fn parse_user_agent(args: &mut [Arg<'_>]) -> CallResult {
    let ua = String::from_utf8_lossy(string_arg(args, 0)?);
    let ua = ua.as_ref();
    let (browser, browser_version, device) = browser(ua);
    let (os, os_version) = operating_system(ua);
    let device = device.unwrap_or(if ua.contains("iPad") || ua.contains("Tablet") {
        "tablet"
    } else if ua.contains("Mobile") || ua.contains("iPhone") || ua.contains("Android") {
        "mobile"
    } else if os == "Other" {
        "other"
    } else {
        "desktop"
    });
    let mut out = Map::with_capacity(3);
    out.insert("browser", pair("family", browser, browser_version));
    out.insert("os", pair("family", os, os_version));
    let mut device_map = Map::with_capacity(1);
    device_map.insert("type", Value::from(device));
    out.insert("device", Value::Object(device_map));
    Ok(Value::Object(out))
}

fn pair(name: &str, family: &str, version: Option<String>) -> Value {
    let mut map = Map::with_capacity(2);
    map.insert(name, Value::from(family));
    map.insert("version", version.map_or(Value::Null, Value::from));
    Value::Object(map)
}

/// The version that follows `marker`: digits and dots (`_` read as `.`, as iOS writes).
fn version_after(ua: &str, marker: &str) -> Option<String> {
    let at = ua.find(marker)? + marker.len();
    let version: String = ua[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | '_'))
        .map(|c| if c == '_' { '.' } else { c })
        .collect();
    let version = version.trim_end_matches('.');
    (!version.is_empty()).then(|| version.to_string())
}

fn browser(ua: &str) -> (&'static str, Option<String>, Option<&'static str>) {
    for (marker, family) in BOTS {
        if ua.contains(marker) {
            return (family, version_after(ua, marker), Some("bot"));
        }
    }
    let lower_bot = ["bot", "spider", "crawler"]
        .iter()
        .any(|w| ua.to_ascii_lowercase().contains(w));
    if lower_bot {
        return ("Other", None, Some("bot"));
    }
    for (marker, family) in BROWSERS {
        let applies = match *family {
            "Safari" => ua.contains("Safari/"),
            "Internet Explorer" if *marker == "rv:" => ua.contains("Trident/"),
            _ => true,
        };
        if applies && ua.contains(marker) {
            return (family, version_after(ua, marker), None);
        }
    }
    ("Other", None, None)
}

fn operating_system(ua: &str) -> (&'static str, Option<String>) {
    if let Some(nt) = version_after(ua, "Windows NT ") {
        let version = match nt.as_str() {
            "10.0" => "10",
            "6.3" => "8.1",
            "6.2" => "8",
            "6.1" => "7",
            "6.0" => "Vista",
            "5.1" | "5.2" => "XP",
            _ => return ("Windows", Some(nt)),
        };
        return ("Windows", Some(version.to_string()));
    }
    if ua.contains("iPhone") || ua.contains("iPad") || ua.contains("iPod") {
        let version = version_after(ua, "iPhone OS ").or_else(|| version_after(ua, "CPU OS "));
        return ("iOS", version);
    }
    if ua.contains("Android") {
        return ("Android", version_after(ua, "Android "));
    }
    if ua.contains("CrOS") {
        return ("Chrome OS", None);
    }
    if ua.contains("Mac OS X") {
        return ("macOS", version_after(ua, "Mac OS X "));
    }
    if ua.contains("Linux") || ua.contains("X11") {
        return ("Linux", None);
    }
    ("Other", None)
}
