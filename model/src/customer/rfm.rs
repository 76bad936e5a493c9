//! RFM scoring and segmentation.
//!
//! # Measures (from [`CustomerSummary`])
//! * **Recency**: days from the last purchase to the reference time.
//! * **Frequency**: orders.
//! * **Monetary**: net spend (returns subtracted).
//!
//! # Scores
//! Each measure becomes a 1–5 quintile score from mid-ranks, so ties always
//! share a score and the result does not depend on input order: with `n`
//! customers, `below` of them strictly worse and `equal` of them tied
//! (including the customer),
//! `pct = (below + equal/2) / n` and `score = clamp(⌈5 · pct⌉, 1, 5)`.
//! For distinct values this gives five groups of (nearly) equal size; a
//! large tie lands on the score of its middle. "Worse" means a larger
//! recency and a smaller frequency or monetary value (the most recent
//! customers score R = 5).
//!
//! # Segments
//! `FM = (F + M) / 2` (so `1, 1.5, …, 5`). A segment is the first rule of
//! [`RfmParams::rules`] whose inclusive `r` and `fm` ranges both contain the
//! customer's `(R, FM)`; [`RfmParams::default_segment`] when none does. The
//! rules are plain data (serde), so a TOML or JSON config can replace them.
//! The default map, which covers every cell of the grid:
//!
//! | segment | R | FM |
//! |---|---|---|
//! | champions | 4–5 | 4–5 |
//! | loyal | 3–5 | 3–5 |
//! | cant_lose | 1 | 4–5 |
//! | at_risk | 1–2 | 3–5 |
//! | potential_loyalist | 4–5 | 2–2.5 |
//! | new | 5 | 1–1.5 |
//! | promising | 4 | 1–1.5 |
//! | need_attention | 3 | 2–2.5 |
//! | about_to_sleep | 3 | 1–1.5 |
//! | hibernating | 2 | 1–2.5 |
//! | lost | 1 | 1–2.5 |

use super::summary::CustomerSummary;
use encore_data::CustomerIdx;
use serde::{Deserialize, Serialize};

/// One segment rule: a name for an inclusive region of `(R, FM)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentRule {
    /// Segment name.
    pub name: String,
    /// Inclusive range of the recency score, `[lo, hi]` within 1..=5.
    pub r: [u8; 2],
    /// Inclusive range of `(F + M)/2`, `[lo, hi]` within 1..=5.
    pub fm: [f64; 2],
}

impl SegmentRule {
    fn new(name: &str, r: [u8; 2], fm: [f64; 2]) -> Self {
        SegmentRule {
            name: name.to_owned(),
            r,
            fm,
        }
    }

    /// True if `(r, fm)` lies in this rule's region.
    pub fn matches(&self, r: u8, fm: f64) -> bool {
        (self.r[0]..=self.r[1]).contains(&r) && self.fm[0] <= fm && fm <= self.fm[1]
    }
}

/// Settings of [`Rfm`]: the segment map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RfmParams {
    /// Segment rules, first match wins.
    pub rules: Vec<SegmentRule>,
    /// Segment of customers no rule matches.
    pub default_segment: String,
}

impl Default for RfmParams {
    /// The map of the module docs, default segment `other`.
    fn default() -> Self {
        let rules = vec![
            SegmentRule::new("champions", [4, 5], [4.0, 5.0]),
            SegmentRule::new("loyal", [3, 5], [3.0, 5.0]),
            SegmentRule::new("cant_lose", [1, 1], [4.0, 5.0]),
            SegmentRule::new("at_risk", [1, 2], [3.0, 5.0]),
            SegmentRule::new("potential_loyalist", [4, 5], [2.0, 2.5]),
            SegmentRule::new("new", [5, 5], [1.0, 1.5]),
            SegmentRule::new("promising", [4, 4], [1.0, 1.5]),
            SegmentRule::new("need_attention", [3, 3], [2.0, 2.5]),
            SegmentRule::new("about_to_sleep", [3, 3], [1.0, 1.5]),
            SegmentRule::new("hibernating", [2, 2], [1.0, 2.5]),
            SegmentRule::new("lost", [1, 1], [1.0, 2.5]),
        ];
        RfmParams {
            rules,
            default_segment: "other".to_owned(),
        }
    }
}

/// Why an RFM configuration is invalid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RfmError {
    /// A rule is malformed.
    #[error("RFM segment rule #{index} ({name:?}): {reason}")]
    InvalidRule {
        index: usize,
        name: String,
        reason: &'static str,
    },
    /// The default segment name is empty.
    #[error("the default RFM segment name is empty")]
    EmptyDefault,
}

impl RfmParams {
    /// Every segment a customer can get: the rule names in rule order, each
    /// once, then the default segment (if no rule has its name).
    pub fn segment_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for name in self
            .rules
            .iter()
            .map(|r| &r.name)
            .chain([&self.default_segment])
        {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        names
    }

    /// Checks every rule: a non-empty name and ranges `lo <= hi` within 1..=5.
    pub fn check(&self) -> Result<(), RfmError> {
        for (index, rule) in self.rules.iter().enumerate() {
            let bad = |reason| {
                Err(RfmError::InvalidRule {
                    index,
                    name: rule.name.clone(),
                    reason,
                })
            };
            if rule.name.trim().is_empty() {
                return bad("the name is empty");
            }
            let [rlo, rhi] = rule.r;
            if !(1 <= rlo && rlo <= rhi && rhi <= 5) {
                return bad("r must be a range lo <= hi within 1..=5");
            }
            let [flo, fhi] = rule.fm;
            if !(flo.is_finite() && fhi.is_finite() && 1.0 <= flo && flo <= fhi && fhi <= 5.0) {
                return bad("fm must be a range lo <= hi within 1..=5");
            }
        }
        if self.default_segment.trim().is_empty() {
            return Err(RfmError::EmptyDefault);
        }
        Ok(())
    }

    /// The `(R, FM)` grid cells (R in 1..=5, FM in 1, 1.5, …, 5) no rule covers.
    pub fn uncovered_cells(&self) -> Vec<(u8, f64)> {
        let mut out = Vec::new();
        for r in 1..=5u8 {
            for k in 2..=10u8 {
                let fm = f64::from(k) / 2.0;
                if !self.rules.iter().any(|rule| rule.matches(r, fm)) {
                    out.push((r, fm));
                }
            }
        }
        out
    }

    /// The segment of `(r, fm)`.
    pub fn segment(&self, r: u8, fm: f64) -> &str {
        self.rules
            .iter()
            .find(|rule| rule.matches(r, fm))
            .map_or(self.default_segment.as_str(), |rule| rule.name.as_str())
    }
}

/// One customer's RFM measures, scores and segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RfmScore {
    /// The customer.
    pub customer: CustomerIdx,
    /// Days since the last purchase.
    pub recency_days: f64,
    /// Orders.
    pub frequency: u32,
    /// Net spend.
    pub monetary: f64,
    /// Recency score (5 = most recent).
    pub r: u8,
    /// Frequency score (5 = most orders).
    pub f: u8,
    /// Monetary score (5 = highest spend).
    pub m: u8,
    /// `(f + m) / 2`.
    pub fm: f64,
    /// Segment name.
    pub segment: String,
}

/// The RFM scorer with a checked segment map.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rfm {
    params: RfmParams,
}

impl Rfm {
    /// Checks `params` and wraps them.
    pub fn new(params: RfmParams) -> Result<Self, RfmError> {
        params.check()?;
        Ok(Rfm { params })
    }

    /// The segment map.
    pub fn params(&self) -> &RfmParams {
        &self.params
    }

    /// Scores and segments every summary at `reference` (seconds since the
    /// epoch); one result per summary, in input order.
    pub fn compute(&self, summaries: &[CustomerSummary], reference: i64) -> Vec<RfmScore> {
        let recency: Vec<f64> = summaries
            .iter()
            .map(|s| s.days_since_last(reference))
            .collect();
        let frequency: Vec<f64> = summaries.iter().map(|s| f64::from(s.orders)).collect();
        let monetary: Vec<f64> = summaries.iter().map(|s| s.total_spend).collect();
        // Lower recency is better: score its negation.
        let neg_recency: Vec<f64> = recency.iter().map(|v| -v).collect();
        let rs = quintile_scores(&neg_recency);
        let fs = quintile_scores(&frequency);
        let ms = quintile_scores(&monetary);
        summaries
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let fm = f64::from(fs[i] + ms[i]) / 2.0;
                RfmScore {
                    customer: s.customer,
                    recency_days: recency[i],
                    frequency: s.orders,
                    monetary: monetary[i],
                    r: rs[i],
                    f: fs[i],
                    m: ms[i],
                    fm,
                    segment: self.params.segment(rs[i], fm).to_owned(),
                }
            })
            .collect()
    }
}

/// Mid-rank quintile scores, 5 for the largest values (module docs). NaN
/// values count as the smallest.
pub fn quintile_scores(values: &[f64]) -> Vec<u8> {
    let n = values.len();
    let key = |v: f64| if v.is_nan() { f64::NEG_INFINITY } else { v };
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| key(values[a]).total_cmp(&key(values[b])));
    let mut scores = vec![0u8; n];
    let mut start = 0;
    while start < n {
        let v = key(values[order[start]]);
        let mut end = start + 1;
        // -0.0 and 0.0 are ties.
        while end < n && key(values[order[end]]) == v {
            end += 1;
        }
        let pct = (start as f64 + (end - start) as f64 / 2.0) / n as f64;
        let score = (5.0 * pct).ceil().clamp(1.0, 5.0) as u8;
        for &i in &order[start..end] {
            scores[i] = score;
        }
        start = end;
    }
    scores
}

#[cfg(test)]
mod tests {
    #[test]
    fn segment_names_list_rules_once_then_the_default() {
        let mut params = RfmParams::default();
        let names = params.segment_names();
        assert_eq!(names.first().map(String::as_str), Some("champions"));
        assert_eq!(names.last().map(String::as_str), Some("other"));
        assert_eq!(names.len(), params.rules.len() + 1);
        // A name used by two rules, and a default that is also a rule's name.
        params
            .rules
            .push(SegmentRule::new("loyal", [2, 2], [4.0, 5.0]));
        params.default_segment = "lost".into();
        let names = params.segment_names();
        assert_eq!(names.len(), params.rules.len() - 1);
        assert_eq!(names.iter().filter(|n| *n == "loyal").count(), 1);
        assert_eq!(names.last().map(String::as_str), Some("lost"));
    }

    use super::*;

    const DAY: i64 = 86_400;

    fn summary(c: u32, last_day: i64, orders: u32, spend: f64) -> CustomerSummary {
        CustomerSummary {
            customer: CustomerIdx(c),
            occasions: orders,
            orders,
            first_purchase: 0,
            last_purchase: last_day * DAY,
            frequency: f64::from(orders - 1),
            recency: 0.0,
            age: 0.0,
            unit: Default::default(),
            monetary: 0.0,
            total_spend: spend,
            spend_complete: true,
            return_lines: 0,
            median_gap_days: None,
        }
    }

    #[test]
    fn quintiles_of_distinct_values() {
        let v: Vec<f64> = (0..10).map(f64::from).collect();
        assert_eq!(quintile_scores(&v), vec![1, 1, 2, 2, 3, 3, 4, 4, 5, 5]);
        let v: Vec<f64> = (0..5).rev().map(f64::from).collect();
        assert_eq!(quintile_scores(&v), vec![5, 4, 3, 2, 1]);
        assert_eq!(quintile_scores(&[7.0]), vec![3]);
        assert!(quintile_scores(&[]).is_empty());
    }

    #[test]
    fn ties_share_a_score_and_order_does_not_matter() {
        let v = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 3.0, 10.0];
        let s = quintile_scores(&v);
        assert_eq!(s, vec![2, 2, 2, 2, 2, 2, 4, 4, 5, 5]);
        let mut rev = v;
        rev.reverse();
        let mut s2 = quintile_scores(&rev);
        s2.reverse();
        assert_eq!(s, s2);
        assert_eq!(quintile_scores(&[4.0; 6]), vec![3; 6]);
        assert_eq!(
            quintile_scores(&[f64::NAN, 1.0, 0.0, -0.0]),
            vec![1, 5, 3, 3]
        );
    }

    #[test]
    fn default_map_covers_the_grid() {
        let p = RfmParams::default();
        p.check().unwrap();
        assert!(p.uncovered_cells().is_empty());
        assert_eq!(p.segment(5, 5.0), "champions");
        assert_eq!(p.segment(3, 4.5), "loyal");
        assert_eq!(p.segment(1, 5.0), "cant_lose");
        assert_eq!(p.segment(2, 3.0), "at_risk");
        assert_eq!(p.segment(4, 2.0), "potential_loyalist");
        assert_eq!(p.segment(5, 1.0), "new");
        assert_eq!(p.segment(4, 1.5), "promising");
        assert_eq!(p.segment(3, 2.5), "need_attention");
        assert_eq!(p.segment(3, 1.0), "about_to_sleep");
        assert_eq!(p.segment(2, 2.0), "hibernating");
        assert_eq!(p.segment(1, 1.0), "lost");
        let names: std::collections::BTreeSet<&str> =
            p.rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names.len(), 11);
    }

    #[test]
    fn compute_scores_and_segments() {
        // Ten customers: c0 bought most recently, most often and most.
        let summaries: Vec<CustomerSummary> = (0..10)
            .map(|c| {
                summary(
                    c,
                    100 - i64::from(c) * 10,
                    10 - c,
                    f64::from(1000 - c * 100),
                )
            })
            .collect();
        let rfm = Rfm::default();
        let out = rfm.compute(&summaries, 101 * DAY);
        assert_eq!(out.len(), 10);
        assert_eq!((out[0].r, out[0].f, out[0].m), (5, 5, 5));
        assert_eq!(out[0].segment, "champions");
        assert_eq!(out[0].recency_days, 1.0);
        assert_eq!((out[9].r, out[9].f, out[9].m), (1, 1, 1));
        assert_eq!(out[9].segment, "lost");
        // A recent one-off small buyer among them is "new".
        let mut s = summaries.clone();
        s.push(summary(10, 101, 1, 1.0));
        let out = rfm.compute(&s, 101 * DAY);
        assert_eq!(out[10].r, 5);
        assert_eq!(out[10].segment, "new");
        assert!(rfm.compute(&[], 0).is_empty());
    }

    #[test]
    fn custom_rules_from_json_and_validation() {
        let json =
            r#"{"rules":[{"name":"vip","r":[4,5],"fm":[4.5,5.0]}],"default_segment":"rest"}"#;
        let p: RfmParams = serde_json::from_str(json).unwrap();
        let rfm = Rfm::new(p.clone()).unwrap();
        assert_eq!(rfm.params().segment(5, 5.0), "vip");
        assert_eq!(rfm.params().segment(5, 4.0), "rest");
        assert_eq!(p.uncovered_cells().len(), 45 - 4);
        let back: RfmParams =
            serde_json::from_str(&serde_json::to_string(&RfmParams::default()).unwrap()).unwrap();
        assert_eq!(back, RfmParams::default());
        let mut bad = RfmParams::default();
        bad.rules[2].r = [3, 1];
        let e = Rfm::new(bad).unwrap_err();
        assert!(e.to_string().contains("cant_lose"), "{e}");
        let mut bad = RfmParams::default();
        bad.rules[0].fm = [0.0, 5.0];
        assert!(bad.check().is_err());
        let mut bad = RfmParams::default();
        bad.rules[0].name = " ".into();
        assert!(bad.check().is_err());
        let bad = RfmParams {
            default_segment: String::new(),
            ..Default::default()
        };
        assert_eq!(bad.check(), Err(RfmError::EmptyDefault));
    }
}
