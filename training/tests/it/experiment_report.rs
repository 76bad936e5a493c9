//! The experiment report on simulated experiments with known effects.
//!
//! Run with `cargo test -p encore-training --test experiment_report -- --nocapture`
//! to see the figures docs/experiments.md quotes.

use encore_data::events::{Event, EventKind};
use encore_model::experiment::report::sim::{Arm, Simulation, write_event_dir};
use encore_model::experiment::report::{
    ExperimentReport, ReportOptions, Z_95, experiment_report, report_from_dir,
};
use encore_model::experiment::{Experiment, ExperimentsConfig};
use encore_model::math::special::ln_gamma;

/// A 50/50 experiment `name` with variants `control` and `treatment`.
fn two_arms(name: &str, salt: &str) -> Experiment {
    let text = format!(
        r#"
[[experiment]]
name = "{name}"
salt = "{salt}"
control = "control"
[[experiment.variant]]
name = "control"
share = 0.5
strategy = {{ list = "als", k = 10 }}
[[experiment.variant]]
name = "treatment"
share = 0.5
strategy = {{ list = "for_you", k = 10, include_purchased = true }}
"#
    );
    ExperimentsConfig::from_toml_str(&text)
        .unwrap()
        .get(name)
        .unwrap()
        .clone()
}

const CONTROL: Arm = Arm {
    conversion: 0.10,
    repeat: 0.25,
    price_median: 10.0,
};

const TREATMENT: Arm = Arm {
    conversion: 0.12,
    ..CONTROL
};

fn options(experiment: &Experiment) -> ReportOptions {
    ReportOptions {
        config: Some(experiment.clone()),
        ..ReportOptions::new(experiment.name())
    }
}

/// Whether `x` lies within the 99.9% interval implied by a 95% interval
/// (`±3.29 se` instead of `±1.96 se`). Secondary checks use it so that the
/// test asserts the one 95% coverage the experiment is about and does not
/// fail by the 5% chance of each further interval.
fn within_999(x: f64, low: f64, high: f64) -> bool {
    let centre = (low + high) / 2.0;
    let half = (high - low) / 2.0 * 3.290_526_731_491_926 / Z_95;
    (x - centre).abs() <= half
}

fn print_report(title: &str, r: &ExperimentReport) {
    println!("--- {title} ---\n{}", r.text());
}

/// (a) 20,000 customers, control converts at 10%, treatment at 12%: the
/// report's difference CI contains the true +2 points and the difference is
/// significant. Goes through the event log directory and the CLI.
#[test]
fn a_known_uplift_is_recovered() {
    let experiment = two_arms("home-for-you", "uplift");
    let sim = Simulation::new(&experiment, vec![CONTROL, TREATMENT], 20_000, 1);
    let events = sim.events();
    let dir = tempfile::tempdir().unwrap();
    write_event_dir(dir.path(), &events, 25_000).unwrap();
    let (r, read) = report_from_dir(dir.path(), &options(&experiment)).unwrap();
    print_report("known uplift: 10% -> 12% conversion, 20,000 customers", &r);
    assert!(read.files.len() > 1, "several log files");
    assert_eq!(read.lines as usize, events.len());
    // Two streamed passes over the files give what the events in memory give.
    let mut in_memory = experiment_report(&events, &options(&experiment)).unwrap();
    assert!(in_memory.data.log.is_none());
    in_memory.data.log = r.data.log.clone();
    assert_eq!(
        serde_json::to_value(&in_memory).unwrap(),
        serde_json::to_value(&r).unwrap()
    );

    assert_eq!(r.customers, 20_000, "every customer was exposed");
    assert_eq!(r.variants[0].name, "control");
    assert_eq!(r.data.assignment_mismatches, Some(0));
    assert_eq!(r.data.customers_in_several_variants, 0);
    assert_eq!(r.data.lines_without_price, 0);
    assert!(!r.sample_ratio.mismatch, "{:?}", r.sample_ratio);

    // The primary figure: the 95% CI of the conversion difference contains
    // the true difference, and the difference is significant.
    let c = &r.comparisons[0];
    assert_eq!(c.variant, "treatment");
    let true_diff = TREATMENT.conversion - CONTROL.conversion;
    assert!(c.conversion.contains(true_diff), "{:?}", c.conversion);
    assert!(c.conversion.significant && c.conversion.p_value < 0.05);
    assert!(c.conversion.ci_low > 0.0);

    // Secondary figures, each within its 99.9% interval: the levels, the
    // revenue per exposed customer and its difference, the repurchase rate
    // (equal in both arms).
    for (v, arm) in r.variants.iter().zip([CONTROL, TREATMENT]) {
        let e = v.conversion;
        assert!(within_999(arm.conversion, e.ci_low, e.ci_high), "{v:?}");
        let e = v.revenue_per_customer;
        let truth = arm.revenue_per_customer(0.0);
        assert!(within_999(truth, e.ci_low, e.ci_high), "{truth} {v:?}");
        let e = v.repurchase_rate;
        assert!(within_999(arm.repeat, e.ci_low, e.ci_high), "{v:?}");
    }
    let true_revenue_diff = TREATMENT.revenue_per_customer(0.0) - CONTROL.revenue_per_customer(0.0);
    let d = c.revenue_per_customer;
    assert!(
        within_999(true_revenue_diff, d.ci_low, d.ci_high),
        "{true_revenue_diff} {d:?}"
    );
    let d = c.repurchase_rate;
    assert!(within_999(0.0, d.ci_low, d.ci_high), "{d:?}");
    println!(
        "true conversion difference {:+.2} pp, revenue per customer {:.3} -> {:.3} \
         (difference {:+.3}); 95% CIs contain them: conversion {}, revenue {}, repurchase {}",
        100.0 * true_diff,
        CONTROL.revenue_per_customer(0.0),
        TREATMENT.revenue_per_customer(0.0),
        true_revenue_diff,
        c.conversion.contains(true_diff),
        c.revenue_per_customer.contains(true_revenue_diff),
        c.repurchase_rate.contains(0.0),
    );

    // The CLI prints the same figures as JSON.
    let config = dir.path().join("experiments.toml");
    std::fs::write(
        &config,
        "[[experiment]]\nname = \"home-for-you\"\nsalt = \"uplift\"\ncontrol = \"control\"\n\
         [[experiment.variant]]\nname = \"control\"\nshare = 0.5\n\
         strategy = { list = \"als\", k = 10 }\n\
         [[experiment.variant]]\nname = \"treatment\"\nshare = 0.5\n\
         strategy = { list = \"for_you\", k = 10 }\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_encore-train"))
        .args(["experiment-report", "--events"])
        .arg(dir.path())
        .args(["--experiment", "home-for-you", "--experiments"])
        .arg(&config)
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["customers"], 20_000);
    assert_eq!(
        json["comparisons"][0]["conversion"]["difference"].as_f64(),
        Some(c.conversion.difference)
    );
    assert_eq!(json["sample_ratio"]["expected_from"], "configured");
    assert_eq!(json["data"]["log"]["files"], read.files.len());
    let text = std::process::Command::new(env!("CARGO_BIN_EXE_encore-train"))
        .args(["experiment-report", "--events"])
        .arg(dir.path())
        .args(["--experiment", "home-for-you"])
        .output()
        .unwrap();
    assert!(text.status.success());
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains("equal shares") && text.contains("treatment"),
        "{text}"
    );
    let missing = std::process::Command::new(env!("CARGO_BIN_EXE_encore-train"))
        .args(["experiment-report", "--events"])
        .arg(dir.path())
        .args(["--experiment", "nope"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains("home-for-you") && err.contains("other"),
        "{err}"
    );
}

/// `[lo, hi]` such that a Binomial(n, p) count falls below `lo` with
/// probability at most `tail` and above `hi` with probability at most `tail`.
fn binomial_bounds(n: u64, p: f64, tail: f64) -> (u64, u64) {
    let pmf = |k: u64| {
        let (nf, kf) = (n as f64, k as f64);
        (ln_gamma(nf + 1.0) - ln_gamma(kf + 1.0) - ln_gamma(nf - kf + 1.0)
            + kf * p.ln()
            + (nf - kf) * (1.0 - p).ln())
        .exp()
    };
    let mut below = 0.0; // P(X < lo)
    let mut lo = 0;
    while below + pmf(lo) <= tail {
        below += pmf(lo);
        lo += 1;
    }
    let mut above = 0.0; // P(X > hi)
    let mut hi = n;
    while above + pmf(hi) <= tail {
        above += pmf(hi);
        hi -= 1;
    }
    (lo, hi)
}

#[test]
fn binomial_bounds_are_right() {
    // Binomial(10, 1/2): P(X = 0) = P(X = 10) = 1/1024 ≈ 0.00098 and
    // P(X ≤ 1) = P(X ≥ 9) = 11/1024 ≈ 0.0107.
    assert_eq!(binomial_bounds(10, 0.5, 0.0009), (0, 10));
    assert_eq!(binomial_bounds(10, 0.5, 0.001), (1, 9));
    assert_eq!(binomial_bounds(10, 0.5, 0.0107), (1, 9));
    assert_eq!(binomial_bounds(10, 0.5, 0.011), (2, 8));
}

/// (b) 200 A/A experiments (same behaviour in both arms, a different salt and
/// seed each) of 4,000 customers: the share of runs with p < 0.05 must be
/// within the binomial bounds of 5%.
#[test]
fn a_a_experiments_are_significant_at_the_nominal_rate() {
    let runs = 200u64;
    let mut significant = [0u64; 3];
    let mut srm_flags = 0u64;
    let mut covered = 0u64;
    for run in 0..runs {
        let experiment = two_arms("aa", &format!("aa-{run}"));
        let sim = Simulation::new(&experiment, vec![CONTROL, CONTROL], 4_000, 1_000 + run);
        let r = experiment_report(&sim.events(), &options(&experiment)).unwrap();
        assert_eq!(r.customers, 4_000);
        let c = &r.comparisons[0];
        for (count, d) in
            significant
                .iter_mut()
                .zip([c.conversion, c.revenue_per_customer, c.repurchase_rate])
        {
            *count += u64::from(d.p_value < 0.05);
        }
        covered += u64::from(c.conversion.contains(0.0));
        srm_flags += u64::from(r.sample_ratio.mismatch);
    }
    let (lo, hi) = binomial_bounds(runs, 0.05, 0.0005);
    let (_, srm_hi) = binomial_bounds(runs, 0.001, 0.0005);
    println!(
        "A/A: {runs} runs of 4,000 customers; p < 0.05 in {} (conversion), {} (revenue per \
         customer), {} (repurchase rate) runs; accepted range {lo} to {hi} (Binomial({runs}, \
         0.05), 0.05% in each tail); conversion difference CI contains 0 in {covered} runs; \
         sample-ratio mismatch flagged in {srm_flags} runs (at most {srm_hi} accepted)",
        significant[0], significant[1], significant[2]
    );
    for (name, count) in ["conversion", "revenue per customer", "repurchase rate"]
        .iter()
        .zip(significant)
    {
        assert!(
            (lo..=hi).contains(&count),
            "{name}: {count} of {runs} A/A runs significant, outside {lo}..={hi}"
        );
    }
    assert!(srm_flags <= srm_hi, "{srm_flags}");
}

/// (c) Dropping 10% of the treatment's exposures is flagged as a sample-ratio
/// mismatch, against the configured shares and against equal shares; the
/// same experiment logged whole is not flagged.
#[test]
fn a_sample_ratio_mismatch_is_flagged() {
    let experiment = two_arms("srm", "srm");
    let mut sim = Simulation::new(&experiment, vec![CONTROL, TREATMENT], 20_000, 7);
    let whole = experiment_report(&sim.events(), &options(&experiment)).unwrap();
    sim.drop_exposures = Some((1, 0.10));
    let events = sim.events();
    let skewed = experiment_report(&events, &options(&experiment)).unwrap();
    print_report("10% of treatment exposures dropped", &skewed);
    println!(
        "sample ratio: whole log chi-square {:.2}, p = {:.4}; 10% of treatment exposures \
         dropped: chi-square {:.1}, p = {:.2e}",
        whole.sample_ratio.chi_square,
        whole.sample_ratio.p_value,
        skewed.sample_ratio.chi_square,
        skewed.sample_ratio.p_value
    );
    assert!(!whole.sample_ratio.mismatch, "{:?}", whole.sample_ratio);
    assert!(skewed.sample_ratio.mismatch, "{:?}", skewed.sample_ratio);
    assert!(
        skewed
            .notes
            .iter()
            .any(|n| n.contains("sample-ratio mismatch"))
    );
    assert_eq!(skewed.sample_ratio.expected_from, "configured");

    // Without the configuration: equal shares, said so, still flagged.
    let bare = experiment_report(&events, &ReportOptions::new("srm")).unwrap();
    assert_eq!(bare.sample_ratio.expected_from, "equal");
    assert!(bare.sample_ratio.mismatch);
    assert!(bare.notes.iter().any(|n| n.contains("equal shares")));
    assert_eq!(bare.data.assignment_mismatches, None);

    // The CLI writes the report and exits with status 4, so a scheduled job
    // notices; on the whole log it exits 0.
    let dir = tempfile::tempdir().unwrap();
    for (name, log, status) in [
        ("skewed", &events, 4),
        ("whole", &sim_whole(&experiment), 0),
    ] {
        let log_dir = dir.path().join(name);
        write_event_dir(&log_dir, log, 50_000).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_encore-train"))
            .args(["experiment-report", "--events"])
            .arg(&log_dir)
            .args(["--experiment", "srm"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(status), "{name}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(text.contains("MISMATCH"), status == 4, "{name}: {text}");
    }
}

/// The events of [`a_sample_ratio_mismatch_is_flagged`]'s experiment, logged whole.
fn sim_whole(experiment: &Experiment) -> Vec<Event> {
    Simulation::new(experiment, vec![CONTROL, TREATMENT], 20_000, 7).events()
}

/// A hand-made log: the window's edges, data errors and prices.
#[test]
fn windows_and_data_errors_by_hand() {
    const DAY: i64 = 86_400;
    let mut events = Vec::new();
    let mut add = |time: i64, kind: EventKind| {
        let id = format!("e{}", events.len());
        events.push(Event {
            id,
            time,
            received_at: None,
            kind,
        });
    };
    let expose = |customer: &str, variant: Option<&str>| EventKind::Exposure {
        customer: customer.into(),
        list: "for_you".into(),
        items: vec![],
        experiment: Some("x".into()),
        variant: variant.map(Into::into),
        request_id: None,
    };
    let buy =
        |customer: &str, order: &str, quantity: f64, price: Option<f64>| EventKind::Purchase {
            order_id: order.into(),
            customer: customer.into(),
            item: "tea".into(),
            quantity,
            price,
        };
    let t0 = 1_000 * DAY;
    // a (control): exposed at t0 and again earlier at t0 - DAY (the first
    // exposure counts); buys at the window's start, two lines of one order,
    // and a second order one second before the window ends; one at its end
    // does not count.
    add(t0, expose("a", Some("control")));
    add(t0 - DAY, expose("a", Some("control")));
    add(t0 - DAY, buy("a", "o1", 2.0, Some(3.0)));
    add(t0 - DAY, buy("a", "o1", 1.0, Some(4.0)));
    add(t0 + 6 * DAY - 1, buy("a", "o2", 1.0, None));
    add(t0 + 6 * DAY, buy("a", "o3", 1.0, Some(100.0)));
    // b (control): exposed, buys the day before: not converted.
    add(t0, expose("b", Some("control")));
    add(t0 - 1, buy("b", "o4", 1.0, Some(5.0)));
    // c (treatment): converted, one order.
    add(t0, expose("c", Some("treatment")));
    add(t0 + DAY, buy("c", "o5", 1.0, Some(8.0)));
    // d: in both variants, excluded; e: no variant, ignored.
    add(t0, expose("d", Some("control")));
    add(t0 + 1, expose("d", Some("treatment")));
    add(t0 + DAY, buy("d", "o6", 1.0, Some(8.0)));
    add(t0, expose("e", None));
    // f (treatment): not converted.
    add(t0, expose("f", Some("treatment")));
    let r = experiment_report(&events, &ReportOptions::new("x")).unwrap();
    print_report("hand-made log", &r);
    assert_eq!(r.data.exposures, 8);
    assert_eq!(r.data.exposures_without_variant, 1);
    assert_eq!(r.data.customers_in_several_variants, 1);
    assert_eq!(r.customers, 4);
    let (control, treatment) = (&r.variants[0], &r.variants[1]);
    assert_eq!((control.customers, control.converted), (2, 1));
    assert_eq!((treatment.customers, treatment.converted), (2, 1));
    assert_eq!(control.repeat_customers, 1);
    assert_eq!(control.repurchase_rate.value, 1.0);
    assert_eq!(treatment.repurchase_rate.value, 0.0);
    assert_eq!(
        control.revenue, 10.0,
        "2 x 3 + 1 x 4; the unpriced line counts 0"
    );
    assert_eq!(control.revenue_per_customer.value, 5.0);
    assert_eq!(treatment.revenue_per_customer.value, 4.0);
    assert_eq!(r.data.purchase_lines_in_windows, 4);
    assert_eq!(r.data.lines_without_price, 1);
    assert!(r.notes.iter().any(|n| n.contains("no price")));
    assert!(r.notes.iter().any(|n| n.contains("several variants")));
    assert!(r.notes.iter().any(|n| n.contains("fewer than 100")));
    // The window is 7 days by default; a 5-day window loses a's second order.
    let mut short = ReportOptions::new("x");
    short.window_days = 5.0;
    let r = experiment_report(&events, &short).unwrap();
    assert_eq!(r.variants[0].repeat_customers, 0);
    assert_eq!(r.variants[0].revenue, 10.0);

    // Errors: unknown experiment (naming the ones seen), missing control.
    let e = experiment_report(&events, &ReportOptions::new("y"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"y\""), "{e}");
    let mut other = ReportOptions::new("x");
    other.control = Some("baseline".into());
    let e = experiment_report(&events, &other).unwrap_err().to_string();
    assert!(e.contains("baseline") && e.contains("treatment"), "{e}");
    let mut bad = ReportOptions::new("x");
    bad.window_days = 0.0;
    assert!(experiment_report(&events, &bad).is_err());
}

/// With the configuration, a variant it lacks is a data error and a logged
/// variant other than the configured assignment is counted.
#[test]
fn configured_variants_and_assignments_are_checked() {
    let experiment = two_arms("cfg", "cfg");
    let sim = Simulation::new(&experiment, vec![CONTROL, CONTROL], 2_000, 3);
    let mut events = sim.events();
    // Relabel one exposure of every 10th customer's first exposure as
    // "mystery", and flip the variant of every exposure of customer c1.
    let mut relabelled = std::collections::HashSet::new();
    let flipped = match experiment.assign("c1").name.as_str() {
        "control" => "treatment",
        _ => "control",
    };
    for e in &mut events {
        if let EventKind::Exposure {
            customer,
            experiment: Some(x),
            variant: Some(v),
            ..
        } = &mut e.kind
            && x == "cfg"
        {
            let n: usize = customer[1..].parse().unwrap();
            if n.is_multiple_of(10) && n > 0 {
                *v = "mystery".into();
                relabelled.insert(n);
            } else if n == 1 {
                *v = flipped.into();
            }
        }
    }
    let r = experiment_report(&events, &options(&experiment)).unwrap();
    assert_eq!(
        r.data.customers_in_unknown_variants as usize,
        relabelled.len()
    );
    assert_eq!(r.data.unknown_variants, ["mystery"]);
    assert_eq!(r.data.assignment_mismatches, Some(1));
    assert_eq!(r.customers as usize, 2_000 - relabelled.len());
    // Without the configuration "mystery" is just another variant.
    let bare = experiment_report(&events, &ReportOptions::new("cfg")).unwrap();
    assert_eq!(bare.variants.len(), 3);
    assert_eq!(bare.comparisons.len(), 2);

    // Missing prices lower the revenue by their share.
    let mut priced = Simulation::new(&experiment, vec![CONTROL, CONTROL], 20_000, 4);
    priced.missing_price = 0.5;
    let r = experiment_report(&priced.events(), &options(&experiment)).unwrap();
    let share = r.data.lines_without_price as f64 / r.data.purchase_lines_in_windows as f64;
    assert!((share - 0.5).abs() < 0.05, "{share}");
    for v in &r.variants {
        let e = v.revenue_per_customer;
        let truth = CONTROL.revenue_per_customer(0.5);
        assert!(within_999(truth, e.ci_low, e.ci_high), "{truth} {v:?}");
    }
}
