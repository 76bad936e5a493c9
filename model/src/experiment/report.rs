//! The outcome of an online experiment, read from the feedback event log
//! (`encore-train experiment-report`, and the server's
//! `GET /v1/admin/experiments/{name}/report`).
//!
//! The exposures of the experiment (exposure events whose `experiment` is its
//! name) define who took part: each customer's variant is the one logged with
//! their exposures, and their *window* starts at their first exposure `t₀`
//! and covers `[t₀, t₀ + W)` (`--window-days`, default 7). Purchase lines of
//! that customer in the window count; purchases before the first exposure or
//! after the window do not. Per variant, over the `n` exposed customers:
//!
//! * **conversion**: the share of them with at least one purchase in the
//!   window (`x / n`);
//! * **revenue per exposed customer**: the mean over all `n` of the sum of
//!   `quantity × price` of their purchase lines in the window (customers who
//!   did not buy count 0; a line without a price counts 0 and is counted in
//!   the data notes);
//! * **repurchase rate** (user level): among the customers who bought in the
//!   window, the share with two or more distinct orders in it.
//!
//! # Statistics
//! * Proportions (conversion, repurchase rate) get a 95% **Wilson score**
//!   interval: `(p̂ + z²/2n ± z √(p̂(1−p̂)/n + z²/4n²)) / (1 + z²/n)`, which
//!   keeps its coverage near 0 and 1 and for small `n`, unlike `p̂ ± z·se`.
//! * Their difference to control (`variant − control`) gets **Newcombe's
//!   hybrid score interval** built from the two Wilson intervals `(l, u)`:
//!   `d − √((p̂₁ − l₁)² + (u₀ − p̂₀)²)` to `d + √((u₁ − p̂₁)² + (p̂₀ − l₀)²)`;
//!   its p-value is the two-sided **pooled two-proportion z test**,
//!   `z = d / √(p̄(1−p̄)(1/n₀ + 1/n₁))`. (The two can disagree at the margin:
//!   a p-value just below 0.05 with an interval just touching 0.)
//! * Revenue per customer is a mean of a skewed variable; its interval is the
//!   normal one, `m ± z s/√n` (`s` the sample standard deviation), and the
//!   difference uses **Welch's** unequal-variance standard error
//!   `√(s₀²/n₀ + s₁²/n₁)` with the normal reference distribution (the large
//!   sample form of Welch's t test: with the hundreds of customers per arm an
//!   experiment needs, t and normal critical values differ by under 1%; arms
//!   under [`SMALL_ARM`] customers get a note).
//! * `z = 1.959964…`, the 97.5% normal quantile; a difference is
//!   `significant` when `p < 0.05`. Variants other than control are each
//!   compared with control without a multiple-comparison correction.
//! * **Sample-ratio mismatch**: a chi-square goodness-of-fit test of the
//!   exposed counts against the configured shares (with `--experiments`), or
//!   against equal shares when no configuration is given (the report says
//!   which), `χ² = Σ (nᵢ − N sᵢ)² / (N sᵢ)` with `k − 1` degrees of freedom.
//!   `p <` [`SRM_ALPHA`] flags a mismatch: the assignment or the exposure
//!   logging is broken and the differences above cannot be trusted.
//!
//! # Data errors
//! A customer exposed under two or more variants of the experiment is a data
//! error: they are counted and excluded. So are customers exposed under a
//! variant the configuration does not have. Exposures of the experiment
//! without a variant are counted and ignored. With a configuration, customers
//! whose logged variant differs from the one [`Experiment::assign`] gives are
//! counted (a changed salt or shares, or a client that assigns on its own) but
//! kept: the logged variant is what they saw.

use crate::experiment::Experiment;
use crate::math::special::{chi_square_sf, normal_sf};
use encore_data::events::{
    Event, EventKind, EventLogError, EventReadReport, for_each_event, for_each_event_again,
};
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::Path;

/// The default conversion window, in days.
pub const DEFAULT_WINDOW_DAYS: f64 = 7.0;

/// The p-value under which a sample-ratio mismatch is flagged.
pub const SRM_ALPHA: f64 = 0.001;

/// The significance level of the differences (the complement of the 95% CIs).
pub const ALPHA: f64 = 0.05;

/// The 97.5% quantile of the standard normal distribution.
pub const Z_95: f64 = 1.959_963_984_540_054;

/// Arms with fewer exposed customers than this get a note that the normal
/// approximations are rough.
pub const SMALL_ARM: u64 = 100;

const DAY: f64 = 86_400.0;

/// What to report on.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// The experiment's name, as logged in exposures.
    pub experiment: String,
    /// The conversion window after the first exposure, in days (> 0).
    pub window_days: f64,
    /// The experiment's configuration: variants, shares and control.
    pub config: Option<Experiment>,
    /// The control variant when there is no configuration [default: `control`].
    pub control: Option<String>,
}

impl ReportOptions {
    pub fn new(experiment: &str) -> Self {
        ReportOptions {
            experiment: experiment.to_string(),
            window_days: DEFAULT_WINDOW_DAYS,
            config: None,
            control: None,
        }
    }
}

/// The longest purchase window after an exposure, in days (100 years).
pub const MAX_WINDOW_DAYS: f64 = 36_525.0;

/// Why no report could be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Log(#[from] EventLogError),
    #[error("the window must be a positive number of days up to {MAX_WINDOW_DAYS}, not {0}")]
    Window(f64),
    #[error("the configuration is for experiment {config:?}, not {experiment:?}")]
    WrongConfig { config: String, experiment: String },
    #[error(
        "no exposure of experiment {experiment:?} in the log{}",
        if seen.is_empty() { String::new() } else { format!("; it has exposures of {}", seen.join(", ")) }
    )]
    NoExposures {
        experiment: String,
        /// The experiments the log does have exposures of.
        seen: Vec<String>,
    },
    #[error(
        "experiment {experiment:?} has no exposures of control variant {control:?} \
         (variants seen: {}); give --control or --experiments",
        seen.join(", ")
    )]
    NoControl {
        experiment: String,
        control: String,
        seen: Vec<String>,
    },
    #[error(
        "experiment {experiment:?} has exposures of one variant only ({variant}); \
         give --experiments to compare against the configured shares"
    )]
    OneVariant { experiment: String, variant: String },
}

/// An estimate with its 95% confidence interval (`NaN`, `null` in JSON, when
/// there is no data).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    pub value: f64,
    pub ci_low: f64,
    pub ci_high: f64,
}

impl Estimate {
    const NONE: Estimate = Estimate {
        value: f64::NAN,
        ci_low: f64::NAN,
        ci_high: f64::NAN,
    };

    /// Whether the interval contains `x`.
    pub fn contains(&self, x: f64) -> bool {
        self.ci_low <= x && x <= self.ci_high
    }
}

/// One variant's figures.
#[derive(Debug, Clone, Serialize)]
pub struct VariantReport {
    pub name: String,
    /// The share the SRM check expects.
    pub expected_share: f64,
    /// Exposed customers (data errors excluded).
    pub customers: u64,
    /// Exposed customers who bought in their window.
    pub converted: u64,
    pub conversion: Estimate,
    /// Sum of `quantity × price` in the windows.
    pub revenue: f64,
    /// Revenue per exposed customer, with its normal 95% CI.
    pub revenue_per_customer: Estimate,
    /// Sample standard deviation of the revenue per exposed customer.
    pub revenue_sd: f64,
    /// Converted customers with two or more orders in their window.
    pub repeat_customers: u64,
    /// `repeat_customers / converted`, with its Wilson 95% CI.
    pub repurchase_rate: Estimate,
    /// Customers whose window runs past the last event of the log.
    pub incomplete_windows: u64,
}

/// A difference `variant − control` with its 95% CI and p-value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Difference {
    pub control: f64,
    pub variant: f64,
    pub difference: f64,
    /// `difference / control` (`null` when control is 0).
    pub relative: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    pub p_value: f64,
    /// `p_value < 0.05`.
    pub significant: bool,
}

impl Difference {
    /// Whether the interval contains `x`.
    pub fn contains(&self, x: f64) -> bool {
        self.ci_low <= x && x <= self.ci_high
    }
}

/// A variant against control.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub variant: String,
    /// Newcombe interval, pooled z test.
    pub conversion: Difference,
    /// Welch standard error, normal reference.
    pub revenue_per_customer: Difference,
    /// Newcombe interval, pooled z test.
    pub repurchase_rate: Difference,
}

/// The sample-ratio mismatch check.
#[derive(Debug, Clone, Serialize)]
pub struct SampleRatio {
    /// `configured` (the shares of `--experiments`) or `equal` (none given).
    pub expected_from: &'static str,
    pub chi_square: f64,
    pub degrees_of_freedom: usize,
    pub p_value: f64,
    /// `p_value < 0.001`.
    pub mismatch: bool,
}

/// Data errors and other counts behind the figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DataNotes {
    /// Exposure events of the experiment.
    pub exposures: u64,
    /// Exposures of the experiment without a variant (ignored).
    pub exposures_without_variant: u64,
    /// Customers exposed under two or more variants (excluded).
    pub customers_in_several_variants: u64,
    /// Customers exposed under a variant the configuration lacks (excluded).
    pub customers_in_unknown_variants: u64,
    /// Variants the configuration lacks, as logged.
    pub unknown_variants: Vec<String>,
    /// Customers whose logged variant is not their configured assignment
    /// (kept; `null` without a configuration).
    pub assignment_mismatches: Option<u64>,
    /// Purchase lines counted in the windows.
    pub purchase_lines_in_windows: u64,
    /// Of those, lines without a price (counted as 0 revenue).
    pub lines_without_price: u64,
    /// The last event time of the log (seconds since the epoch).
    pub log_end: Option<i64>,
    /// What the log reader found, when the report was read from a directory.
    pub log: Option<LogNotes>,
}

/// What the event log reader found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LogNotes {
    /// `events-*.jsonl` files read.
    pub files: usize,
    /// Lines read.
    pub lines: u64,
    /// Events dropped because an earlier one had the same id.
    pub duplicates: u64,
    /// Files whose unterminated last line was skipped.
    pub torn_tails: usize,
}

/// The report of one experiment.
#[derive(Debug, Clone, Serialize)]
pub struct ExperimentReport {
    pub experiment: String,
    pub window_days: f64,
    pub control: String,
    /// Exposed customers over all variants (data errors excluded).
    pub customers: u64,
    /// Control first, then the others (configuration order, or by name).
    pub variants: Vec<VariantReport>,
    /// Every non-control variant against control.
    pub comparisons: Vec<Comparison>,
    pub sample_ratio: SampleRatio,
    pub data: DataNotes,
    /// Plain-language warnings.
    pub notes: Vec<String>,
}

/// Per exposed customer, while reading.
struct Exposed {
    first: i64,
    /// Index of the variant: into the logged names in the exposure pass,
    /// into the report's variants in the purchase pass.
    variant: u32,
    several: bool,
    /// Distinct orders with lines in the window.
    orders: Vec<String>,
    revenue: f64,
}

/// Wilson score interval of `x` successes in `n` trials.
pub fn wilson(x: u64, n: u64) -> Estimate {
    if n == 0 {
        return Estimate::NONE;
    }
    let n_trials = n;
    let n = n as f64;
    let p = x as f64 / n;
    let z2 = Z_95 * Z_95;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = Z_95 / denom * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    // The bounds are exactly 0 at x = 0 and 1 at x = n; rounding would miss them.
    Estimate {
        value: p,
        ci_low: if x == 0 {
            0.0
        } else {
            (centre - half).max(0.0)
        },
        ci_high: if x == n_trials {
            1.0
        } else {
            (centre + half).min(1.0)
        },
    }
}

/// Two-sided p-value of a standard normal statistic.
fn two_sided(z: f64) -> f64 {
    (2.0 * normal_sf(z.abs())).min(1.0)
}

/// `(x1/n1) − (x0/n0)`: Newcombe's hybrid score interval and the pooled
/// two-proportion z test.
pub fn proportion_difference(x0: u64, n0: u64, x1: u64, n1: u64) -> Difference {
    let (a, b) = (wilson(x0, n0), wilson(x1, n1));
    let d = b.value - a.value;
    let low = d - ((b.value - b.ci_low).powi(2) + (a.ci_high - a.value).powi(2)).sqrt();
    let high = d + ((b.ci_high - b.value).powi(2) + (a.value - a.ci_low).powi(2)).sqrt();
    let (n0f, n1f) = (n0 as f64, n1 as f64);
    let pooled = (x0 + x1) as f64 / (n0f + n1f);
    let se = (pooled * (1.0 - pooled) * (1.0 / n0f + 1.0 / n1f)).sqrt();
    let p_value = if n0 == 0 || n1 == 0 {
        f64::NAN
    } else if se > 0.0 {
        two_sided(d / se)
    } else {
        1.0 // Both arms all 0 or all 1.
    };
    difference(a.value, b.value, low, high, p_value)
}

fn difference(control: f64, variant: f64, ci_low: f64, ci_high: f64, p_value: f64) -> Difference {
    let d = variant - control;
    Difference {
        control,
        variant,
        difference: d,
        relative: if control != 0.0 {
            d / control
        } else {
            f64::NAN
        },
        ci_low,
        ci_high,
        p_value,
        significant: p_value < ALPHA,
    }
}

/// Mean, sample standard deviation and count.
#[derive(Debug, Clone, Copy)]
struct Moments {
    n: f64,
    mean: f64,
    sd: f64,
}

fn moments(values: &[f64]) -> Moments {
    let n = values.len() as f64;
    if values.is_empty() {
        return Moments {
            n,
            mean: f64::NAN,
            sd: f64::NAN,
        };
    }
    let mean = values.iter().sum::<f64>() / n;
    let ss: f64 = values.iter().map(|v| (v - mean).powi(2)).sum();
    // One value has no sample deviation: undefined, not zero, so that no
    // interval or test claims a precision the data cannot give.
    let sd = if values.len() > 1 {
        (ss / (n - 1.0)).sqrt()
    } else {
        f64::NAN
    };
    Moments { n, mean, sd }
}

fn mean_estimate(m: Moments) -> Estimate {
    if m.n == 0.0 {
        return Estimate::NONE;
    }
    let half = Z_95 * m.sd / m.n.sqrt();
    Estimate {
        value: m.mean,
        ci_low: m.mean - half,
        ci_high: m.mean + half,
    }
}

/// `mean₁ − mean₀`: Welch's standard error, normal reference.
fn mean_difference(a: Moments, b: Moments) -> Difference {
    let d = b.mean - a.mean;
    let se = (a.sd * a.sd / a.n + b.sd * b.sd / b.n).sqrt();
    let p_value = if !se.is_finite() || a.n < 2.0 || b.n < 2.0 {
        // An arm with fewer than two customers: no test.
        f64::NAN
    } else if se > 0.0 {
        two_sided(d / se)
    } else if d == 0.0 {
        1.0
    } else {
        0.0
    };
    difference(a.mean, b.mean, d - Z_95 * se, d + Z_95 * se, p_value)
}

/// The chi-square goodness-of-fit test of `counts` against `shares`.
fn sample_ratio(counts: &[u64], shares: &[f64], expected_from: &'static str) -> SampleRatio {
    let total: u64 = counts.iter().sum();
    let chi_square: f64 = counts
        .iter()
        .zip(shares)
        .map(|(&c, &s)| {
            let e = total as f64 * s;
            (c as f64 - e).powi(2) / e
        })
        .sum();
    let df = counts.len().saturating_sub(1);
    let p_value = if df == 0 || total == 0 {
        1.0
    } else {
        chi_square_sf(chi_square, df as f64).expect("chi-square of finite counts")
    };
    SampleRatio {
        expected_from,
        chi_square,
        degrees_of_freedom: df,
        p_value,
        mismatch: p_value < SRM_ALPHA,
    }
}

/// The report of `options.experiment` over `events` (in any order).
pub fn experiment_report(
    events: &[Event],
    options: &ReportOptions,
) -> Result<ExperimentReport, ReportError> {
    let mut exposures = ExposurePass::new(options)?;
    events.iter().for_each(|e| exposures.add(e));
    let mut windows = exposures.finish()?;
    events.iter().for_each(|e| windows.add(e));
    Ok(windows.finish())
}

/// First pass over the log: who was exposed to the experiment, under which
/// variant, from when. Holds one entry per exposed customer, never the events.
struct ExposurePass<'o> {
    options: &'o ReportOptions,
    data: DataNotes,
    /// Variant names as logged, indexed by [`Exposed::variant`].
    logged: Vec<String>,
    exposed: HashMap<String, Exposed>,
    other_experiments: BTreeSet<String>,
}

/// Second pass: the purchases in each exposed customer's window.
struct WindowPass<'o> {
    options: &'o ReportOptions,
    data: DataNotes,
    window: i64,
    /// Control first.
    names: Vec<String>,
    shares: Vec<f64>,
    control: String,
    expected_from: &'static str,
    mismatches: u64,
    exposed: HashMap<String, Exposed>,
}

impl<'o> ExposurePass<'o> {
    fn new(options: &'o ReportOptions) -> Result<Self, ReportError> {
        if !(options.window_days > 0.0 && options.window_days <= MAX_WINDOW_DAYS) {
            return Err(ReportError::Window(options.window_days));
        }
        if let Some(c) = &options.config
            && c.name() != options.experiment
        {
            return Err(ReportError::WrongConfig {
                config: c.name().to_string(),
                experiment: options.experiment.clone(),
            });
        }
        Ok(ExposurePass {
            options,
            data: DataNotes::default(),
            logged: Vec::new(),
            exposed: HashMap::new(),
            other_experiments: Default::default(),
        })
    }

    fn add(&mut self, e: &Event) {
        let data = &mut self.data;
        data.log_end = Some(data.log_end.map_or(e.time, |t: i64| t.max(e.time)));
        let EventKind::Exposure {
            customer,
            experiment: Some(experiment),
            variant,
            ..
        } = &e.kind
        else {
            return;
        };
        if *experiment != self.options.experiment {
            if !self.other_experiments.contains(experiment) {
                self.other_experiments.insert(experiment.clone());
            }
            return;
        }
        data.exposures += 1;
        let Some(variant) = variant else {
            data.exposures_without_variant += 1;
            return;
        };
        let v = match self.logged.iter().position(|l| l == variant) {
            Some(v) => v,
            None => {
                self.logged.push(variant.clone());
                self.logged.len() - 1
            }
        } as u32;
        match self.exposed.get_mut(customer.as_str()) {
            Some(entry) => {
                entry.first = entry.first.min(e.time);
                entry.several |= entry.variant != v;
            }
            None => {
                self.exposed.insert(
                    customer.clone(),
                    Exposed {
                        first: e.time,
                        variant: v,
                        several: false,
                        orders: Vec::new(),
                        revenue: 0.0,
                    },
                );
            }
        }
    }

    /// The variants (control first) and the data errors out.
    fn finish(self) -> Result<WindowPass<'o>, ReportError> {
        let ExposurePass {
            options,
            mut data,
            logged,
            mut exposed,
            other_experiments,
        } = self;
        let name = options.experiment.as_str();
        if exposed.is_empty() {
            return Err(ReportError::NoExposures {
                experiment: name.to_string(),
                seen: other_experiments.into_iter().collect(),
            });
        }
        let (names, shares, control, expected_from): (Vec<String>, Vec<f64>, String, &'static str) =
            match &options.config {
                Some(c) => {
                    let mut order: Vec<usize> = (0..c.variants().len()).collect();
                    order.retain(|&i| i != c.control_index());
                    order.insert(0, c.control_index());
                    (
                        order
                            .iter()
                            .map(|&i| c.variants()[i].name.clone())
                            .collect(),
                        order.iter().map(|&i| c.variants()[i].share).collect(),
                        c.control().name.clone(),
                        "configured",
                    )
                }
                None => {
                    let control = options.control.clone().unwrap_or_else(|| "control".into());
                    let mut seen: Vec<String> = exposed
                        .values()
                        .filter(|x| !x.several)
                        .map(|x| logged[x.variant as usize].clone())
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .collect();
                    let Some(pos) = seen.iter().position(|v| *v == control) else {
                        return Err(ReportError::NoControl {
                            experiment: name.to_string(),
                            control,
                            seen,
                        });
                    };
                    if seen.len() < 2 {
                        return Err(ReportError::OneVariant {
                            experiment: name.to_string(),
                            variant: control,
                        });
                    }
                    let c = seen.remove(pos);
                    seen.insert(0, c);
                    let k = seen.len();
                    (seen, vec![1.0 / k as f64; k], control, "equal")
                }
            };
        // Logged variant index -> report index.
        let to_report: Vec<Option<u32>> = logged
            .iter()
            .map(|l| names.iter().position(|n| n == l).map(|i| i as u32))
            .collect();

        // Data errors out.
        let mut unknown = BTreeSet::new();
        let mut mismatches = 0u64;
        exposed.retain(|customer, x| {
            let logged_name = &logged[x.variant as usize];
            if x.several {
                data.customers_in_several_variants += 1;
                return false;
            }
            let Some(i) = to_report[x.variant as usize] else {
                data.customers_in_unknown_variants += 1;
                unknown.insert(logged_name.clone());
                return false;
            };
            if let Some(c) = &options.config
                && c.assign(customer).name != *logged_name
            {
                mismatches += 1;
            }
            x.variant = i;
            true
        });
        data.unknown_variants = unknown.into_iter().collect();
        data.assignment_mismatches = options.config.as_ref().map(|_| mismatches);
        Ok(WindowPass {
            options,
            data,
            window: (options.window_days * DAY).round() as i64,
            names,
            shares,
            control,
            expected_from,
            mismatches,
            exposed,
        })
    }
}

impl WindowPass<'_> {
    fn add(&mut self, e: &Event) {
        let EventKind::Purchase {
            order_id,
            customer,
            quantity,
            price,
            ..
        } = &e.kind
        else {
            return;
        };
        let Some(x) = self.exposed.get_mut(customer.as_str()) else {
            return;
        };
        if e.time < x.first || e.time >= x.first + self.window {
            return;
        }
        self.data.purchase_lines_in_windows += 1;
        match price {
            Some(p) => x.revenue += quantity * p,
            None => self.data.lines_without_price += 1,
        }
        if !x.orders.contains(order_id) {
            x.orders.push(order_id.clone());
        }
    }

    fn finish(self) -> ExperimentReport {
        let WindowPass {
            options,
            data,
            window,
            names,
            shares,
            control,
            expected_from,
            mismatches,
            exposed,
        } = self;
        let k = names.len();
        let mut revenue: Vec<Vec<f64>> = vec![Vec::new(); k];
        let mut converted = vec![0u64; k];
        let mut repeat = vec![0u64; k];
        let mut incomplete = vec![0u64; k];
        let log_end = data.log_end.unwrap_or(i64::MIN);
        // In customer order, so that sums do not depend on the map's order.
        let mut exposed: Vec<(String, Exposed)> = exposed.into_iter().collect();
        exposed.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (_, x) in &exposed {
            let i = x.variant as usize;
            revenue[i].push(x.revenue);
            converted[i] += u64::from(!x.orders.is_empty());
            repeat[i] += u64::from(x.orders.len() >= 2);
            incomplete[i] += u64::from(x.first + window > log_end + 1);
        }
        let counts: Vec<u64> = revenue.iter().map(|r| r.len() as u64).collect();
        let stats: Vec<Moments> = revenue.iter().map(|r| moments(r)).collect();
        let variants: Vec<VariantReport> = (0..k)
            .map(|i| VariantReport {
                name: names[i].clone(),
                expected_share: shares[i],
                customers: counts[i],
                converted: converted[i],
                conversion: wilson(converted[i], counts[i]),
                revenue: revenue[i].iter().sum(),
                revenue_per_customer: mean_estimate(stats[i]),
                revenue_sd: stats[i].sd,
                repeat_customers: repeat[i],
                repurchase_rate: wilson(repeat[i], converted[i]),
                incomplete_windows: incomplete[i],
            })
            .collect();
        let comparisons = (1..k)
            .map(|i| Comparison {
                variant: names[i].clone(),
                conversion: proportion_difference(converted[0], counts[0], converted[i], counts[i]),
                revenue_per_customer: mean_difference(stats[0], stats[i]),
                repurchase_rate: proportion_difference(
                    repeat[0],
                    converted[0],
                    repeat[i],
                    converted[i],
                ),
            })
            .collect();
        let sample_ratio = sample_ratio(&counts, &shares, expected_from);

        let mut notes = Vec::new();
        if sample_ratio.mismatch {
            notes.push(format!(
                "sample-ratio mismatch (p = {:.2e} < {SRM_ALPHA}): the exposed counts do not match \
                 the expected shares, so assignment or exposure logging is broken; do not trust \
                 the differences",
                sample_ratio.p_value
            ));
        }
        if expected_from == "equal" {
            notes.push(
                "no --experiments file: the sample-ratio check assumes equal shares".to_string(),
            );
        }
        if data.customers_in_several_variants > 0 {
            notes.push(format!(
                "{} customers were exposed under several variants: excluded",
                data.customers_in_several_variants
            ));
        }
        if data.customers_in_unknown_variants > 0 {
            notes.push(format!(
                "{} customers were exposed under variants the configuration lacks ({}): excluded",
                data.customers_in_unknown_variants,
                data.unknown_variants.join(", ")
            ));
        }
        if data.exposures_without_variant > 0 {
            notes.push(format!(
                "{} exposures of the experiment carry no variant: ignored",
                data.exposures_without_variant
            ));
        }
        if mismatches > 0 {
            notes.push(format!(
                "{mismatches} customers were logged under another variant than the configuration \
                 assigns (changed salt or shares?): kept under the logged variant"
            ));
        }
        if data.lines_without_price > 0 {
            notes.push(format!(
                "{} of {} purchase lines in the windows have no price: counted as 0 revenue",
                data.lines_without_price, data.purchase_lines_in_windows
            ));
        }
        let total_incomplete: u64 = incomplete.iter().sum();
        if total_incomplete > 0 {
            notes.push(format!(
                "{total_incomplete} customers' windows run past the end of the log: their \
                 purchases are counted over a shorter window (alike in every variant)"
            ));
        }
        if counts.iter().any(|&c| c < SMALL_ARM) {
            notes.push(format!(
                "a variant has fewer than {SMALL_ARM} exposed customers: the normal \
                 approximations behind the intervals are rough"
            ));
        }
        ExperimentReport {
            experiment: options.experiment.clone(),
            window_days: options.window_days,
            control,
            customers: counts.iter().sum(),
            variants,
            comparisons,
            sample_ratio,
            data,
            notes,
        }
    }
}

/// Reads the event log directory and reports; also returns what the reader
/// found (files, duplicates, torn tails). Streams the files twice (exposures,
/// then the purchases in the windows), the second time only as far as the
/// first read: memory grows with the exposed customers, not the events.
pub fn report_from_dir(
    dir: &Path,
    options: &ReportOptions,
) -> Result<(ExperimentReport, EventReadReport), ReportError> {
    let mut exposures = ExposurePass::new(options)?;
    let read = for_each_event(dir, |e| exposures.add(&e))?;
    let mut windows = exposures.finish()?;
    for_each_event_again(&read, Some("purchase"), |e| windows.add(&e))?;
    let mut report = windows.finish();
    report.data.log = Some(LogNotes {
        files: read.files.len(),
        lines: read.lines,
        duplicates: read.duplicates,
        torn_tails: read.torn_tails.len(),
    });
    if read.duplicates > 0 || !read.torn_tails.is_empty() {
        report.notes.push(format!(
            "the log had {} duplicate event ids (first kept) and {} torn last lines (skipped)",
            read.duplicates,
            read.torn_tails.len()
        ));
    }
    Ok((report, read))
}

fn pct(x: f64) -> String {
    if x.is_nan() {
        "-".into()
    } else {
        format!("{:.2}%", 100.0 * x)
    }
}

fn pp(x: f64) -> String {
    if x.is_nan() {
        "-".into()
    } else {
        format!("{:+.2}", 100.0 * x)
    }
}

fn num(x: f64) -> String {
    if x.is_nan() {
        "-".into()
    } else {
        format!("{x:.2}")
    }
}

fn signed(x: f64) -> String {
    if x.is_nan() {
        "-".into()
    } else {
        format!("{x:+.2}")
    }
}

fn p_value(p: f64) -> String {
    if p.is_nan() {
        "-".into()
    } else if p < 1e-4 {
        "<0.0001".into()
    } else {
        format!("{p:.4}")
    }
}

/// One line of the differences to control in [`ExperimentReport::text`]:
/// the variant column, the figure, then `d` written by `fmt` with `unit`.
fn difference_line(
    variant: &str,
    what: &str,
    d: &Difference,
    fmt: fn(f64) -> String,
    unit: &str,
) -> String {
    format!(
        "{variant:<16} {what:<16} {}{unit} [{}, {}]{} p = {}{}\n",
        fmt(d.difference),
        fmt(d.ci_low),
        fmt(d.ci_high),
        rel(d.relative),
        p_value(d.p_value),
        if d.significant { " *" } else { "" }
    )
}

fn rel(x: f64) -> String {
    if x.is_nan() {
        String::new()
    } else {
        format!(" ({:+.1}%)", 100.0 * x)
    }
}

impl ExperimentReport {
    /// The report as a readable table.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let w = |out: &mut String, s: String| out.push_str(&s);
        w(
            &mut out,
            format!(
                "Experiment {:?}: {} exposed customers, window {} days after the first \
                 exposure, control {:?}\n\n",
                self.experiment, self.customers, self.window_days, self.control
            ),
        );
        w(
            &mut out,
            format!(
                "{:<16} {:>6} {:>9}  {:<28} {:<26} {:<28}\n",
                "variant",
                "share",
                "customers",
                "conversion [95% CI]",
                "revenue/customer [95% CI]",
                "repurchase rate [95% CI]"
            ),
        );
        for v in &self.variants {
            let c = v.conversion;
            let r = v.revenue_per_customer;
            let q = v.repurchase_rate;
            w(
                &mut out,
                format!(
                    "{:<16} {:>6.3} {:>9}  {:<28} {:<26} {:<28}\n",
                    v.name,
                    v.expected_share,
                    v.customers,
                    format!("{} [{}, {}]", pct(c.value), pct(c.ci_low), pct(c.ci_high)),
                    format!("{} [{}, {}]", num(r.value), num(r.ci_low), num(r.ci_high)),
                    format!(
                        "{} [{}, {}] of {}",
                        pct(q.value),
                        pct(q.ci_low),
                        pct(q.ci_high),
                        v.converted
                    ),
                ),
            );
        }
        if !self.comparisons.is_empty() {
            out.push_str("\nDifference to control (variant - control), 95% CI, two-sided p-value; * p < 0.05\n");
            for c in &self.comparisons {
                let d = &c.conversion;
                out.push_str(&difference_line(&c.variant, "conversion", d, pp, " pp"));
                let d = &c.revenue_per_customer;
                out.push_str(&difference_line("", "revenue/customer", d, signed, ""));
                let d = &c.repurchase_rate;
                out.push_str(&difference_line("", "repurchase rate", d, pp, " pp"));
            }
        }
        let s = &self.sample_ratio;
        let _ = writeln!(
            out,
            "\nSample ratio ({} shares): chi-square {:.2} with {} df, p = {}: {}",
            s.expected_from,
            s.chi_square,
            s.degrees_of_freedom,
            p_value(s.p_value),
            if s.mismatch {
                "MISMATCH (p < 0.001)"
            } else {
                "no mismatch"
            }
        );
        let d = &self.data;
        let _ = writeln!(
            out,
            "Data: {} exposures; {} purchase lines in the windows ({} without price); \
             {} customers in several variants and {} in unknown variants excluded{}",
            d.exposures,
            d.purchase_lines_in_windows,
            d.lines_without_price,
            d.customers_in_several_variants,
            d.customers_in_unknown_variants,
            match d.assignment_mismatches {
                Some(m) => format!("; {m} logged variants differ from the configured assignment"),
                None => String::new(),
            }
        );
        for n in &self.notes {
            let _ = writeln!(out, "note: {n}");
        }
        out
    }
}

/// A seeded simulator of an experiment's event log, for tests and demos.
///
/// Customers `c0`, `c1`, ... are assigned by the real [`Experiment::assign`].
/// Each is first exposed at a uniform time in the 14 days after `start`, and
/// exposed again 0 to 2 more times in the 10 days after that. A customer of
/// arm `a` converts with probability `a.conversion`: a first order at a
/// uniform time within the window after the first exposure, and with
/// probability `a.repeat` a second order, also in the window. An order has 1
/// or 2 lines (equally likely), each of 1 to 3 units (equally likely) at a
/// log-normal unit price with median `a.price_median` and log-sd
/// [`sim::PRICE_SIGMA`]; with probability `missing_price` a line has no
/// price. Noise the report must ignore: 30% of customers buy in the 30 days
/// before their first exposure, 30% after their window, 20% are exposed in
/// another experiment, and every customer has one exposure outside any
/// experiment.
pub mod sim {
    use crate::experiment::Experiment;
    use encore_data::events::{Event, EventKind, event_to_line};
    use rand::{Rng, SeedableRng};
    use rand_xoshiro::Xoshiro256PlusPlus;
    use std::io::Write;
    use std::path::Path;

    /// Log-sd of the unit price.
    pub const PRICE_SIGMA: f64 = 0.5;
    /// Mean order lines (1 or 2) times mean units per line (1 to 3).
    const MEAN_UNITS_PER_ORDER: f64 = 1.5 * 2.0;
    const DAY: i64 = 86_400;

    /// One variant's behaviour.
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub struct Arm {
        /// Probability of buying in the window.
        pub conversion: f64,
        /// Probability that a converting customer orders a second time in the window.
        pub repeat: f64,
        /// Median unit price.
        pub price_median: f64,
    }

    impl Arm {
        /// The true mean revenue per exposed customer.
        pub fn revenue_per_customer(&self, missing_price: f64) -> f64 {
            let mean_price = self.price_median * (PRICE_SIGMA * PRICE_SIGMA / 2.0).exp();
            self.conversion
                * (1.0 + self.repeat)
                * MEAN_UNITS_PER_ORDER
                * mean_price
                * (1.0 - missing_price)
        }
    }

    /// A simulated experiment.
    #[derive(Debug, Clone)]
    pub struct Simulation<'a> {
        pub experiment: &'a Experiment,
        /// One arm per variant, in configuration order.
        pub arms: Vec<Arm>,
        pub customers: usize,
        pub seed: u64,
        /// Start of the experiment (seconds since the epoch).
        pub start: i64,
        pub window_days: f64,
        /// Drop this fraction of one variant's (by position) customers'
        /// exposures from the log: a logging bug the SRM check must catch.
        pub drop_exposures: Option<(usize, f64)>,
        /// Probability that a purchase line has no price.
        pub missing_price: f64,
        /// Prefix of customer ids (`c` gives `c0`, `c1`, ...).
        pub id_prefix: String,
    }

    impl<'a> Simulation<'a> {
        pub fn new(
            experiment: &'a Experiment,
            arms: Vec<Arm>,
            customers: usize,
            seed: u64,
        ) -> Self {
            assert_eq!(
                arms.len(),
                experiment.variants().len(),
                "one arm per variant"
            );
            Simulation {
                experiment,
                arms,
                customers,
                seed,
                start: 1_764_547_200, // 2025-12-01
                window_days: super::DEFAULT_WINDOW_DAYS,
                drop_exposures: None,
                missing_price: 0.0,
                id_prefix: "c".into(),
            }
        }

        /// The events, in time order.
        pub fn events(&self) -> Vec<Event> {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(self.seed);
            let window = (self.window_days * 86_400.0).round() as i64;
            let mut events = Vec::with_capacity(self.customers * 5);
            let mut next_id = 0u64;
            let mut push = |events: &mut Vec<Event>, time: i64, kind: EventKind| {
                next_id += 1;
                events.push(Event {
                    id: format!("e{next_id}"),
                    time,
                    received_at: None,
                    kind,
                });
            };
            let exposure = |customer: &str, experiment: Option<&str>, variant: Option<&str>| {
                EventKind::Exposure {
                    customer: customer.to_string(),
                    list: "for_you".into(),
                    items: vec!["tea".into(), "mug".into()],
                    experiment: experiment.map(str::to_string),
                    variant: variant.map(str::to_string),
                    request_id: None,
                }
            };
            let mut order_no = 0u64;
            for c in 0..self.customers {
                let customer = format!("{}{c}", self.id_prefix);
                let arm_index = self.experiment.assign_index(&customer);
                let arm = self.arms[arm_index];
                let variant = self.experiment.variants()[arm_index].name.as_str();
                let first = self.start + rng.gen_range(0..14 * DAY);
                let dropped = self
                    .drop_exposures
                    .is_some_and(|(i, f)| i == arm_index && rng.gen_bool(f));
                if !dropped {
                    let name = Some(self.experiment.name());
                    push(&mut events, first, exposure(&customer, name, Some(variant)));
                    for _ in 0..rng.gen_range(0..=2) {
                        let t = first + rng.gen_range(1..10 * DAY);
                        push(&mut events, t, exposure(&customer, name, Some(variant)));
                    }
                }
                // Noise: another experiment, and an exposure outside any.
                if rng.gen_bool(0.2) {
                    let t = self.start + rng.gen_range(0..20 * DAY);
                    push(
                        &mut events,
                        t,
                        exposure(&customer, Some("other"), Some("x")),
                    );
                }
                let t = self.start + rng.gen_range(0..20 * DAY);
                push(&mut events, t, exposure(&customer, None, None));

                let mut order = |events: &mut Vec<Event>, rng: &mut Xoshiro256PlusPlus, t: i64| {
                    order_no += 1;
                    let order_id = format!("o{order_no}");
                    for line in 0..rng.gen_range(1..=2) {
                        let z = standard_normal(rng);
                        let price = arm.price_median * (PRICE_SIGMA * z).exp();
                        let price = (!rng.gen_bool(self.missing_price)).then_some(price);
                        push(
                            events,
                            t,
                            EventKind::Purchase {
                                order_id: order_id.clone(),
                                customer: customer.clone(),
                                item: format!("item-{line}"),
                                quantity: rng.gen_range(1..=3) as f64,
                                price,
                            },
                        );
                    }
                };
                if rng.gen_bool(arm.conversion) {
                    let t = first + rng.gen_range(0..window);
                    order(&mut events, &mut rng, t);
                    if rng.gen_bool(arm.repeat) {
                        let t = first + rng.gen_range(0..window);
                        order(&mut events, &mut rng, t);
                    }
                }
                if rng.gen_bool(0.3) {
                    let t = first - rng.gen_range(1..30 * DAY);
                    order(&mut events, &mut rng, t);
                }
                if rng.gen_bool(0.3) {
                    let t = first + window + rng.gen_range(0..10 * DAY);
                    order(&mut events, &mut rng, t);
                }
            }
            events.sort_by_key(|e| e.time);
            events
        }
    }

    /// A standard normal draw (Box–Muller).
    fn standard_normal(rng: &mut Xoshiro256PlusPlus) -> f64 {
        let u1: f64 = 1.0 - rng.r#gen::<f64>(); // (0, 1]
        let u2: f64 = rng.r#gen();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Writes `events` as an event log directory: `events-00000001.jsonl`,
    /// ... with `per_file` lines each.
    pub fn write_event_dir(dir: &Path, events: &[Event], per_file: usize) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        for (i, chunk) in events.chunks(per_file.max(1)).enumerate() {
            let path = dir.join(format!("events-{:08}.jsonl", i + 1));
            let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
            for e in chunk {
                writeln!(out, "{}", event_to_line(e))?;
            }
            out.flush()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) {
        assert!((a - b).abs() <= tol, "{a} vs {b}");
    }

    #[test]
    fn wilson_matches_worked_examples() {
        // Newcombe (1998), Table I: 81/263 -> 0.2553 to 0.3662; 0/10 -> 0 to 0.2775.
        let e = wilson(81, 263);
        close(e.ci_low, 0.2553, 5e-5);
        close(e.ci_high, 0.3662, 5e-5);
        let e = wilson(0, 10);
        assert_eq!(e.ci_low, 0.0);
        close(e.ci_high, 0.2775, 5e-5);
        let e = wilson(10, 10);
        close(e.ci_low, 0.7225, 5e-5);
        assert_eq!(e.ci_high, 1.0);
        assert!(wilson(0, 0).value.is_nan());
    }

    #[test]
    fn newcombe_matches_worked_examples() {
        // Newcombe (1998), Table II, method 10: 56/70 - 48/80 = 0.2000,
        // 0.0524 to 0.3339; 9/10 - 3/10: 0.1705 to 0.8090.
        let d = proportion_difference(48, 80, 56, 70);
        close(d.difference, 0.2, 1e-12);
        close(d.ci_low, 0.0524, 5e-5);
        close(d.ci_high, 0.3339, 5e-5);
        let d = proportion_difference(3, 10, 9, 10);
        close(d.ci_low, 0.1705, 5e-5);
        close(d.ci_high, 0.8090, 5e-5);
        // Pooled z by hand: p = 104/150, se = sqrt(p(1-p)(1/80 + 1/70)).
        let p: f64 = 104.0 / 150.0;
        let z = 0.2 / (p * (1.0 - p) * (1.0 / 80.0 + 1.0 / 70.0)).sqrt();
        close(d_p(48, 80, 56, 70), 2.0 * normal_sf(z), 1e-15);
        assert_eq!(proportion_difference(0, 50, 0, 60).p_value, 1.0);
    }

    fn d_p(x0: u64, n0: u64, x1: u64, n1: u64) -> f64 {
        proportion_difference(x0, n0, x1, n1).p_value
    }

    #[test]
    fn welch_difference_by_hand() {
        let a = moments(&[1.0, 2.0, 3.0, 4.0]);
        let b = moments(&[2.0, 4.0, 6.0]);
        close(a.sd, (5.0f64 / 3.0).sqrt(), 1e-15);
        let d = mean_difference(a, b);
        let se = (5.0_f64 / 3.0 / 4.0 + 4.0 / 3.0).sqrt();
        close(d.difference, 1.5, 1e-15);
        close(d.ci_high - d.ci_low, 2.0 * Z_95 * se, 1e-12);
        close(d.p_value, 2.0 * normal_sf(1.5 / se), 1e-15);
    }

    /// One customer in an arm (or none) gives no interval and no test,
    /// never a "significant" difference.
    #[test]
    fn tiny_arms_are_never_significant() {
        for (a, b) in [
            (moments(&[0.0]), moments(&[5.0])),
            (moments(&[]), moments(&[1.0, 2.0, 3.0])),
            (moments(&[0.0, 1.0]), moments(&[7.0])),
        ] {
            let d = mean_difference(a, b);
            assert!(d.p_value.is_nan(), "{d:?}");
            assert!(!d.significant, "{d:?}");
        }
        // Constant arms of several customers are still compared.
        let d = mean_difference(moments(&[2.0; 5]), moments(&[2.0; 4]));
        assert_eq!(d.p_value, 1.0);
        assert!(matches!(
            experiment_report(
                &[],
                &ReportOptions {
                    window_days: 1e300,
                    ..ReportOptions::new("x")
                }
            ),
            Err(ReportError::Window(_))
        ));
    }

    /// A configured experiment whose control arm logged nothing (a variant
    /// rolled out to everyone by mistake, say) still gets a report: the
    /// sample-ratio test flags the mismatch and the differences are empty.
    #[test]
    fn a_configured_control_without_exposures_is_reported_as_a_mismatch() {
        let config = crate::experiment::ExperimentsConfig::from_toml_str(
            r#"
[[experiment]]
name = "home"
salt = "s"
control = "control"
[[experiment.variant]]
name = "control"
share = 0.5
strategy = { list = "als", k = 4 }
[[experiment.variant]]
name = "treatment"
share = 0.5
strategy = { list = "for_you", k = 4 }
"#,
        )
        .unwrap();
        let events: Vec<Event> = (0..40)
            .map(|i| Event {
                id: format!("e{i}"),
                time: 1_000 + i,
                received_at: None,
                kind: EventKind::Exposure {
                    customer: format!("c{i}"),
                    list: "for_you".into(),
                    items: vec!["a".into()],
                    experiment: Some("home".into()),
                    variant: Some("treatment".into()),
                    request_id: None,
                },
            })
            .collect();
        let report = experiment_report(
            &events,
            &ReportOptions {
                config: Some(config.get("home").unwrap().clone()),
                ..ReportOptions::new("home")
            },
        )
        .unwrap();
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["sample_ratio"]["mismatch"], true, "{json}");
    }

    #[test]
    fn sample_ratio_by_hand() {
        // 520 vs 480 at 50/50: chi-square = 2 * 20^2 / 500 = 1.6.
        let s = sample_ratio(&[520, 480], &[0.5, 0.5], "equal");
        close(s.chi_square, 1.6, 1e-12);
        close(s.p_value, 0.205_903_210_732_068, 1e-12);
        assert!(!s.mismatch);
        let s = sample_ratio(&[5_500, 4_500], &[0.5, 0.5], "equal");
        assert!(s.mismatch, "{s:?}");
    }
}
