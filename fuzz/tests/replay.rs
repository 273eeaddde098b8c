//! Replays every file under `seeds/<target>/` and `regressions/<target>/` through that
//! target's body, so the invariants run on stable in plain `cargo test`, without libFuzzer.
//!
//! `regressions/open/<target>/` holds reproducers of bugs not fixed yet in sluice; their
//! test is ignored and fails until the bug is fixed (`cargo test -- --ignored`). Fixing one
//! means moving its file up to `regressions/<target>/`.

use std::path::Path;

#[test]
fn seeds_and_regressions_hold_every_invariant() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut replayed = 0;
    for (name, target) in sluice_fuzz::TARGETS {
        let mut seeds = 0;
        for dir in ["seeds", "regressions"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(name)) else {
                continue;
            };
            let mut paths: Vec<_> = entries.map(|e| e.expect("readable dir").path()).collect();
            paths.sort();
            for path in paths {
                let data = std::fs::read(&path).expect("readable seed");
                println!("{}", path.display());
                target(&data);
                seeds += 1;
            }
        }
        assert!(seeds > 0, "no seeds for {name}");
        replayed += seeds;
    }
    println!("replayed {replayed} inputs");
}

#[test]
#[ignore = "reproducers of open bugs: fail until sluice fixes them"]
fn open_bugs_are_fixed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions/open");
    for (name, target) in sluice_fuzz::TARGETS {
        let Ok(entries) = std::fs::read_dir(root.join(name)) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("readable dir").path();
            println!("{}", path.display());
            target(&std::fs::read(&path).expect("readable reproducer"));
        }
    }
}

#[test]
fn every_target_has_a_binary() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (name, _) in sluice_fuzz::TARGETS {
        assert!(
            root.join("fuzz_targets")
                .join(format!("{name}.rs"))
                .exists(),
            "{name}"
        );
    }
}

#[test]
fn empty_and_tiny_inputs_hold_every_invariant() {
    for (_, target) in sluice_fuzz::TARGETS {
        for data in [&b""[..], b"\0", b"\n", b"\xff", b"{}", b"a=b", b"<13>"] {
            target(data);
        }
    }
}
