//! The layer order of ARCHITECTURE.md, checked: a module of the library may name (as
//! `crate::module`) only modules of lower layers. Every top-level module must be placed
//! in a layer, so a new one cannot slip in without a decision.

use std::collections::BTreeMap;
use std::path::Path;

use crate::util::repo_root;

/// Lowest first. Modules in one layer do not import each other.
const LAYERS: &[&[&str]] = &[
    &["telemetry", "field_error", "error_chain"],
    &["config"],
    &["ack"],
    &["event"],
    &["channel"],
    &[
        "condition",
        "parse",
        "tls",
        "router_url",
        "delivery",
        "listen",
        "enrichment",
    ],
    &["template", "codec", "api", "kafka", "remap"],
    &["buffer", "transforms", "sources", "alert"],
    &["sinks"],
    &["store", "ship"],
    &["pipeline", "tap", "federation"],
    &["topology", "unit_test"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// `crate::NAME` references in `text`, outside line comments.
fn crate_references(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let before = rest[..at].chars().next_back();
            rest = &rest[at + "crate::".len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || matches!(c, '_' | ':' | '$')) {
                continue; // `other_crate::`, `$crate::`: not a path of ours
            }
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.push(name);
            }
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_module_imports_one_above_it() {
    let src = repo_root().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    // The binary's own modules (`mod cli;` in main.rs) sit above the library and may use
    // any of it, as main.rs does.
    let main = std::fs::read_to_string(src.join("main.rs")).unwrap();
    let binary_modules: Vec<&str> = main
        .lines()
        .filter_map(|line| line.strip_prefix("mod ")?.strip_suffix(';'))
        .collect();
    let mut upward: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut unplaced = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let first = relative.components().next().unwrap().as_os_str();
        let module = first.to_string_lossy().trim_end_matches(".rs").to_string();
        if module == "main" || module == "lib" || binary_modules.contains(&module.as_str()) {
            continue;
        }
        let Some(own) = layer_of(&module) else {
            unplaced.push(module);
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for name in crate_references(&text) {
            if name == module {
                continue;
            }
            match layer_of(&name) {
                Some(layer) if layer < own => {}
                _ => upward
                    .entry(relative.display().to_string())
                    .or_default()
                    .push(name),
            }
        }
    }
    unplaced.sort();
    unplaced.dedup();
    assert!(
        unplaced.is_empty(),
        "modules in no layer (add them to LAYERS here and to ARCHITECTURE.md): {unplaced:?}"
    );
    for names in upward.values_mut() {
        names.sort();
        names.dedup();
    }
    assert!(
        upward.is_empty(),
        "imports of a module in the same or a higher layer: {upward:#?}"
    );
}

#[test]
fn the_check_sees_an_upward_import() {
    assert_eq!(
        crate_references("use crate::topology::Fanout; // crate::config\nx::crate::y"),
        vec!["topology".to_string()]
    );
}
