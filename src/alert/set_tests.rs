//! The lifecycle of one rule, as tables (a set of one rule), and the equivalence of a set
//! of rules with each rule alone.

use super::*;
use crate::alert::{AlertConfig, Status};
use crate::event::{Map, Value};

const S: i64 = 1_000_000_000;

/// A set of one rule, spoken to with one rule's words.
struct Rule(RuleSet);

impl Rule {
    fn observe(&mut self, event: &Event, now: i64) {
        self.0.observe(event, now)
    }
    fn tick(&mut self, now: i64) -> Vec<Transition> {
        self.0.tick(now).into_iter().map(|(_, t)| t).collect()
    }
    fn groups(&self) -> usize {
        self.0.groups(0)
    }
    fn active(&self) -> Vec<Active> {
        self.0.active(0)
    }
    fn spec(&self) -> &RuleSpec {
        self.0.spec(0)
    }
    fn take_dirty(&mut self) -> bool {
        self.0.take_dirty(0)
    }
    fn snapshot(&self) -> StateFile {
        self.0.snapshot(0)
    }
    fn restore(&mut self, state: StateFile, now: i64) -> Vec<Transition> {
        self.0.restore(0, state, now)
    }
}

fn spec(id: &str, text: &str) -> RuleSpec {
    let config: AlertConfig = toml::from_str(text).expect("toml");
    config.build(id).expect("valid")
}

fn rule(extra: &str) -> Rule {
    Rule(RuleSet::new(vec![spec("errors", extra)]))
}

fn event(app: &str, level: &str) -> Event {
    let mut f = Map::new();
    f.insert("app", Value::from(app));
    f.insert("level", Value::from(level));
    f.insert("message", Value::from(format!("{level} in {app}")));
    Event::new(f)
}

/// One step of a lifecycle table: at time `at` (seconds), send `errors` error events
/// and `infos` info events for app A, then tick; expect these transitions.
struct Step {
    at: f64,
    errors: usize,
    infos: usize,
    expect: &'static [&'static str],
}

/// A [`Step`], one line of a table.
fn step(at: f64, errors: usize, infos: usize, expect: &'static [&'static str]) -> Step {
    Step {
        at,
        errors,
        infos,
        expect,
    }
}

fn run(rule: &mut Rule, steps: &[Step]) {
    for (i, step) in steps.iter().enumerate() {
        let now = (step.at * S as f64) as i64;
        for _ in 0..step.errors {
            rule.observe(&event("A", "error"), now);
        }
        for _ in 0..step.infos {
            rule.observe(&event("A", "info"), now);
        }
        let got: Vec<String> = rule
            .tick(now)
            .iter()
            .map(|t| {
                let mut s = t.status.as_str().to_string();
                if t.repeat {
                    s.push_str("+repeat");
                }
                s
            })
            .collect();
        assert_eq!(got, step.expect, "step {i} at {}s", step.at);
    }
}

const THRESHOLD: &str = r#"
    condition = 'level == "error"'
    group_by = ["app"]
    kind = "threshold"
    window_secs = 10
    threshold = 3
"#;

#[test]
fn threshold_fires_once_and_resolves_when_the_window_empties() {
    let mut r = rule(THRESHOLD);
    run(
        &mut r,
        &[
            step(0.0, 3, 5, &[]), // 3 is not above 3
            step(1.0, 1, 0, &["firing"]),
            step(2.0, 5, 0, &[]), // dedup: still firing
            step(9.0, 0, 0, &[]),
            // At 10.5 s the errors at 0 s left the window; 6 remain.
            step(10.5, 0, 0, &[]),
            step(12.5, 0, 0, &["resolved"]),
            step(13.0, 0, 0, &[]),
        ],
    );
    // Resolved and empty: the group is forgotten.
    assert_eq!(r.groups(), 0);
}

#[test]
fn for_secs_holds_before_firing_and_a_blip_does_not_fire() {
    let mut r = rule(&format!("{THRESHOLD}\nfor_secs = 3"));
    run(
        &mut r,
        &[
            step(0.0, 4, 0, &[]), // pending
            step(2.0, 0, 0, &[]),
            step(3.0, 0, 0, &["firing"]),
            step(11.0, 0, 0, &["resolved"]),
            step(20.0, 4, 0, &[]), // pending again
            step(31.0, 0, 0, &[]), // cleared while pending
        ],
    );
    assert!(r.active().is_empty());
}

#[test]
fn repeat_interval_notifies_again_while_firing() {
    let mut r = rule(&format!("{THRESHOLD}\nrepeat_interval_secs = 5"));
    run(
        &mut r,
        &[
            step(0.0, 4, 0, &["firing"]),
            step(4.0, 4, 0, &[]),
            step(5.0, 0, 0, &["firing+repeat"]),
            step(9.0, 4, 0, &[]),
            step(10.0, 0, 0, &["firing+repeat"]),
            step(30.0, 0, 0, &["resolved"]),
        ],
    );
}

#[test]
fn ratio_compares_matching_to_all_events() {
    let mut r = rule(
        r#"
        condition = 'level == "error"'
        group_by = ["app"]
        kind = "ratio"
        window_secs = 10
        threshold = 0.5
        min_events = 4
    "#,
    );
    run(
        &mut r,
        &[
            step(0.0, 3, 0, &[]),            // 3 events < min_events
            step(1.0, 0, 3, &[]),            // 3/6 is not above 0.5
            step(2.0, 1, 0, &["firing"]),    // 4/7
            step(3.0, 0, 10, &["resolved"]), // 4/17
        ],
    );
}

#[test]
fn absence_fires_for_a_silent_group_and_resolves_when_it_speaks() {
    let mut r = rule(
        r#"
        group_by = ["app"]
        kind = "absence"
        window_secs = 5
        forget_after_secs = 20
    "#,
    );
    run(
        &mut r,
        &[
            step(0.0, 0, 1, &[]),
            step(4.0, 0, 0, &[]),
            step(5.0, 0, 0, &["firing"]),
            step(6.0, 0, 1, &["resolved"]),
            step(11.0, 0, 0, &["firing"]),
            step(26.0, 0, 0, &[]),
            // Silent for longer than forget_after: resolved and forgotten (a group
            // that is gone for good, such as a scaled-down instance, does not fire
            // forever).
            step(26.5, 0, 0, &["resolved"]),
            step(60.0, 0, 0, &[]),
        ],
    );
    assert_eq!(r.groups(), 0);
    // A forgotten group that speaks again is new.
    run(
        &mut r,
        &[
            step(70.0, 0, 1, &[]),
            step(75.0, 0, 0, &["firing"]),
            step(76.0, 1, 0, &["resolved"]),
        ],
    );
}

#[test]
fn groups_are_separate_and_capped() {
    let mut r = rule(&format!("{THRESHOLD}\nmax_groups = 2"));
    for app in ["A", "B", "C"] {
        for _ in 0..4 {
            r.observe(&event(app, "error"), 0);
        }
    }
    r.observe(&event("B", "info"), 0);
    let mut no_app = event("A", "error");
    no_app.fields.remove("app");
    r.observe(&no_app, 0);
    assert_eq!(r.0.take_overflow(0), 4, "group C is over the cap");
    let fired = r.tick(0);
    let mut apps: Vec<String> = fired
        .iter()
        .map(|t| t.group.get("app").unwrap().to_text())
        .collect();
    apps.sort();
    assert_eq!(apps, ["A", "B"]);
    assert_ne!(fired[0].fingerprint, fired[1].fingerprint);
}

#[test]
fn templates_see_group_value_and_sample() {
    let mut r = rule(&format!(
        "{THRESHOLD}\nlabels = {{ team = \"{{{{ app }}}}-oncall\" }}\nannotations = {{ summary = \"{{{{ value }}}} errors on {{{{ app }}}}: {{{{ message }}}}\" }}"
    ));
    for _ in 0..4 {
        r.observe(&event("A", "error"), 0);
    }
    let fired = r.tick(0);
    assert_eq!(fired[0].labels["team"], "A-oncall");
    assert_eq!(fired[0].annotations["summary"], "4 errors on A: error in A");
    assert_eq!(fired[0].message, "4 errors on A: error in A");
    let event = fired[0].to_event(r.spec(), 0);
    assert_eq!(event.get("status"), Some(&Value::from("firing")));
    assert_eq!(event.get("group.app"), Some(&Value::from("A")));
    assert_eq!(event.get("labels.team"), Some(&Value::from("A-oncall")));
    assert!(event.get("ends_at").is_none());
    // The resolution carries the labels rendered at firing.
    let resolved = r.tick(20 * S);
    assert_eq!(resolved[0].labels["team"], "A-oncall");
    assert_eq!(resolved[0].ends_at, Some(20 * S));
    assert_eq!(resolved[0].starts_at, 0);
}

#[test]
fn restore_keeps_firing_without_notifying_then_resolves() {
    let mut r = rule(THRESHOLD);
    for _ in 0..4 {
        r.observe(&event("A", "error"), 0);
    }
    assert_eq!(r.tick(0).len(), 1);
    assert!(r.take_dirty());
    let state = r.snapshot();
    assert_eq!(state.alerts.len(), 1);

    // A new process at 100 s: restored, not re-notified, held for one window.
    let mut r2 = rule(THRESHOLD);
    let restored = r2.restore(state, 100 * S);
    assert_eq!(restored.len(), 1);
    assert!(restored[0].restored);
    assert_eq!(restored[0].starts_at, 0);
    assert!(r2.tick(101 * S).is_empty());
    assert_eq!(r2.active().len(), 1);
    // Errors keep coming: still firing, no new notification.
    for _ in 0..4 {
        r2.observe(&event("A", "error"), 105 * S);
    }
    assert!(r2.tick(111 * S).is_empty());
    // They stop: resolved, with the original start.
    let resolved = r2.tick(116 * S);
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0].status, Status::Resolved);
    assert_eq!(resolved[0].starts_at, 0);
    assert!(r2.snapshot().alerts.is_empty());
}

/// A random rule of any kind, over app (or everything), with a template that reads the
/// sample event.
fn random_spec(rng: &mut fastrand::Rng, id: &str) -> RuleSpec {
    let condition = [
        "",
        "condition = 'level == \"error\"'",
        "condition = 'status >= 500'",
        "condition = 'level >= \"warn\" and status != 404'",
    ][rng.usize(0..4)];
    let group_by = ["group_by = [\"app\"]", "", "group_by = [\"app\", \"host\"]"][rng.usize(0..3)];
    let kind = match rng.usize(0..3) {
        0 => format!("kind = \"threshold\"\nthreshold = {}", rng.usize(0..6)),
        1 => format!(
            "kind = \"ratio\"\nthreshold = 0.{}\nmin_events = {}",
            rng.usize(1..9),
            rng.usize(1..5)
        ),
        _ => "kind = \"absence\"\nforget_after_secs = 30".to_string(),
    };
    let text = format!(
        "{condition}\n{group_by}\n{kind}\nwindow_secs = {}\nfor_secs = {}\nrepeat_interval_secs = {}\nlabels = {{ at = \"{{{{ app }}}}/{{{{ status }}}}\" }}",
        [3, 10][rng.usize(0..2)],
        [0, 0, 2][rng.usize(0..3)],
        [4, 100][rng.usize(0..2)],
    );
    spec(id, &text)
}

fn random_event(rng: &mut fastrand::Rng) -> Event {
    let mut f = Map::new();
    if rng.usize(0..10) > 0 {
        f.insert("app", Value::from(["A", "B", "C", "D"][rng.usize(0..4)]));
    }
    f.insert("host", Value::from(["h1", "h2"][rng.usize(0..2)]));
    f.insert(
        "level",
        Value::from(["info", "warn", "error"][rng.usize(0..3)]),
    );
    f.insert(
        "status",
        Value::Integer([200, 404, 500, 503][rng.usize(0..4)]),
    );
    Event::new(f)
}

/// Rules evaluated together in one set (sharing clusters, columns, conditions) alert
/// exactly as each evaluated alone, across a restart too.
#[test]
fn a_set_alerts_as_its_rules_would_alone() {
    for seed in 0..60 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let n = rng.usize(2..12);
        let specs: Vec<RuleSpec> = (0..n)
            .map(|i| random_spec(&mut rng, &format!("r{i}")))
            .collect();
        let mut together = RuleSet::new(specs.clone());
        let mut alone: Vec<RuleSet> = specs
            .iter()
            .map(|s| RuleSet::new(vec![s.clone()]))
            .collect();
        let mut now = 1_000 * S;
        let mut fired = 0;
        for step in 0..120 {
            if step == 60 {
                // A restart: every rule's state file is read back into new sets.
                let mut fresh = RuleSet::new(specs.clone());
                for (i, single) in alone.iter_mut().enumerate() {
                    let mut restarted = RuleSet::new(vec![specs[i].clone()]);
                    let a = restarted.restore(0, single.snapshot(0), now);
                    let b = fresh.restore(i, together.snapshot(i), now);
                    assert_eq!(a, b, "seed {seed}: restore of rule {i}");
                    *single = restarted;
                }
                together = fresh;
            }
            now += rng.i64(0..2_500_000_000);
            // Bursts and silences, so that rules fire and resolve.
            let burst = if (step / 20) % 2 == 0 {
                rng.usize(0..8)
            } else {
                rng.usize(0..2)
            };
            for _ in 0..burst {
                let event = random_event(&mut rng);
                together.observe(&event, now);
                for single in &mut alone {
                    single.observe(&event, now);
                }
            }
            let mut got = together.tick(now);
            let mut want: Vec<(usize, Transition)> = alone
                .iter_mut()
                .enumerate()
                .flat_map(|(i, single)| single.tick(now).into_iter().map(move |(_, t)| (i, t)))
                .collect();
            let order = |a: &(usize, Transition), b: &(usize, Transition)| {
                (a.0, &a.1.fingerprint).cmp(&(b.0, &b.1.fingerprint))
            };
            got.sort_by(order);
            want.sort_by(order);
            assert_eq!(got, want, "seed {seed} step {step}");
            fired += got
                .iter()
                .filter(|(_, t)| t.status == Status::Firing)
                .count();
            for (i, single) in alone.iter().enumerate() {
                let fingerprints = |mut a: Vec<Active>| {
                    a.sort_by(|x, y| x.fingerprint.cmp(&y.fingerprint));
                    a
                };
                assert_eq!(
                    fingerprints(together.active(i)),
                    fingerprints(single.active(0)),
                    "seed {seed} step {step}: active alerts of rule {i}"
                );
            }
        }
        assert!(fired > 0, "seed {seed}: the stream made something fire");
    }
}
