//! Lifecycle stages relative to each customer's own buying rhythm.
//!
//! # Rule
//! For a customer at the reference time, with `s` = days since the last
//! purchase and `g` = the customer's typical gap:
//! 1. **new**: one purchase occasion and the first purchase at most
//!    `new_days` before the reference;
//! 2. otherwise **active** if `s ≤ active_mult · g`,
//! 3. **dormant** if `s ≤ dormant_mult · g`,
//! 4. **lost** if the rhythm or the model calls the customer gone — `s >
//!    lost_mult · g`, or P(alive) is known and below `lost_p_alive` — *and*
//!    the model does not contradict it: the churn risk is unknown or at
//!    least `lost_churn_risk`, and P(alive) is unknown or below
//!    `sure_alive_p_alive`;
//! 5. **at_risk** otherwise.
//!
//! So a customer the lifecycle calls lost never has a reported P(alive) of
//! `sure_alive_p_alive` (0.999) or more, nor a churn risk below
//! `lost_churn_risk` (0.5): the stage and the figures next to it agree.
//!
//! The typical gap `g` is the median gap between the customer's purchase
//! occasions ([`CustomerSummary::median_gap_days`]). Customers with a single
//! occasion use the population median: the median over repeat customers of
//! their own median gap (each repeat customer counts once, so heavy buyers do
//! not dominate); `default_gap_days` when no customer has repeated. `g` is
//! never below `min_gap_days` (two orders on the same day would otherwise
//! make the customer "late" a day later).
//!
//! # Model figures
//! With a repeat-buying model (the selected one, [`super::select`]) each
//! customer gets
//! * **P(alive)** from [`Chosen::p_alive`]: not reported when the fit is
//!   degenerate (it calls everybody alive) or, for BG/NBD, when the customer
//!   has no repeat purchase (alive by assumption);
//! * **churn risk**: the model's probability that the customer does *not*
//!   buy within her own lifecycle horizon `h = lost_mult · g` from the
//!   reference ([`Chosen::churn_risk`]), i.e. within the silence after
//!   which the rhythm alone would call her lost. It is reported for
//!   degenerate fits too.
//!
//! The model must have been fitted in the time unit of the summaries'
//! `recency` and `age`.

use super::select::Chosen;
use super::summary::{CustomerSummary, median};
use crate::setting::{InvalidSetting, non_negative, positive, unit_interval};
use encore_data::CustomerIdx;
use serde::{Deserialize, Serialize};

/// A lifecycle stage (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    New,
    Active,
    Dormant,
    AtRisk,
    Lost,
}

impl Stage {
    /// The stage's snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::New => "new",
            Stage::Active => "active",
            Stage::Dormant => "dormant",
            Stage::AtRisk => "at_risk",
            Stage::Lost => "lost",
        }
    }
}

impl std::str::FromStr for Stage {
    type Err = String;

    /// The snake_case name (`sleeping` is accepted for `dormant`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "new" => Ok(Stage::New),
            "active" => Ok(Stage::Active),
            "dormant" | "sleeping" => Ok(Stage::Dormant),
            "at_risk" => Ok(Stage::AtRisk),
            "lost" => Ok(Stage::Lost),
            other => Err(format!(
                "unknown stage '{other}': use new, active, dormant, at_risk or lost"
            )),
        }
    }
}

/// Parses a comma-separated list of stages (empty entries skipped).
pub fn parse_stages(list: &str) -> Result<Vec<Stage>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect()
}

/// Thresholds of the lifecycle rule (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LifecycleParams {
    /// A one-occasion customer whose first purchase is at most this many days old is new.
    pub new_days: f64,
    /// Active while days since the last purchase ≤ `active_mult · g`.
    pub active_mult: f64,
    /// Dormant while ≤ `dormant_mult · g`.
    pub dormant_mult: f64,
    /// At risk while ≤ `lost_mult · g` (and P(alive) allows it); lost beyond.
    pub lost_mult: f64,
    /// Below this P(alive) a customer past `dormant_mult · g` is lost.
    pub lost_p_alive: f64,
    /// A customer whose churn risk is below this is not lost (at most at risk).
    pub lost_churn_risk: f64,
    /// A customer whose reported P(alive) is at least this is not lost.
    pub sure_alive_p_alive: f64,
    /// Gap used when no customer has a repeat purchase.
    pub default_gap_days: f64,
    /// Floor of every typical gap.
    pub min_gap_days: f64,
}

impl Default for LifecycleParams {
    /// `new_days` 30, multipliers 1.5 / 3 / 6, `lost_p_alive` 0.1,
    /// `lost_churn_risk` 0.5, `sure_alive_p_alive` 0.999,
    /// `default_gap_days` 30, `min_gap_days` 1.
    fn default() -> Self {
        LifecycleParams {
            new_days: 30.0,
            active_mult: 1.5,
            dormant_mult: 3.0,
            lost_mult: 6.0,
            lost_p_alive: 0.1,
            lost_churn_risk: 0.5,
            sure_alive_p_alive: 0.999,
            default_gap_days: 30.0,
            min_gap_days: 1.0,
        }
    }
}

/// Why lifecycle settings are invalid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LifecycleError {
    /// A threshold is out of range.
    #[error("invalid lifecycle parameter {name} = {value}: {reason}")]
    InvalidParam {
        name: &'static str,
        value: String,
        reason: &'static str,
    },
}

crate::setting::invalid_setting_from!(LifecycleError);

/// One customer's stage and the figures behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerStage {
    /// The customer.
    pub customer: CustomerIdx,
    /// The stage.
    pub stage: Stage,
    /// Days since the last purchase.
    pub days_since_last: f64,
    /// The typical gap `g` used, in days.
    pub typical_gap_days: f64,
    /// True if `g` is the population median (one-occasion customer).
    pub population_gap: bool,
    /// P(alive) from the model, if one was given and it says something
    /// (module docs).
    pub p_alive: Option<f64>,
    /// Probability of no purchase within `lost_mult · g` (module docs), if a
    /// model was given.
    #[serde(default)]
    pub churn_risk: Option<f64>,
}

impl LifecycleParams {
    /// Checks every threshold: non-negative finite values, multipliers in
    /// non-decreasing order, `lost_p_alive` in `[0, 1]`, positive gaps.
    pub fn check(&self) -> Result<(), LifecycleError> {
        let bad = |name, value: f64, reason| Err(InvalidSetting::new(name, value, reason).into());
        non_negative(&[
            ("new_days", self.new_days),
            ("active_mult", self.active_mult),
            ("dormant_mult", self.dormant_mult),
            ("lost_mult", self.lost_mult),
        ])?;
        if self.dormant_mult < self.active_mult {
            return bad("dormant_mult", self.dormant_mult, "must be >= active_mult");
        }
        if self.lost_mult < self.dormant_mult {
            return bad("lost_mult", self.lost_mult, "must be >= dormant_mult");
        }
        unit_interval(&[
            ("lost_p_alive", self.lost_p_alive),
            ("lost_churn_risk", self.lost_churn_risk),
            ("sure_alive_p_alive", self.sure_alive_p_alive),
        ])?;
        positive(&[
            ("default_gap_days", self.default_gap_days),
            ("min_gap_days", self.min_gap_days),
        ])?;
        Ok(())
    }

    /// The population typical gap of `summaries` in days (module docs),
    /// before the `min_gap_days` floor.
    pub fn population_gap_days(&self, summaries: &[CustomerSummary]) -> f64 {
        let mut gaps: Vec<f64> = summaries.iter().filter_map(|s| s.median_gap_days).collect();
        if gaps.is_empty() {
            self.default_gap_days
        } else {
            median(&mut gaps)
        }
    }

    /// The stage of every summary at `reference` (seconds since the epoch),
    /// in input order; `model` adds P(alive) and the churn risk to the rule.
    pub fn classify(
        &self,
        summaries: &[CustomerSummary],
        reference: i64,
        model: Option<Chosen<'_>>,
    ) -> Result<Vec<CustomerStage>, LifecycleError> {
        self.check()?;
        let population = self.population_gap_days(summaries).max(self.min_gap_days);
        Ok(summaries
            .iter()
            .map(|s| {
                let s_days = s.days_since_last(reference);
                let age_days = (reference - s.first_purchase).max(0) as f64 / 86_400.0;
                let (g, population_gap) = match s.median_gap_days {
                    Some(g) => (g.max(self.min_gap_days), false),
                    None => (population, true),
                };
                let (x, t_x, t) = s.repeat_summary().tuple();
                let p_alive = model.and_then(|m| m.p_alive(x, t_x, t));
                let horizon = s.unit.from_days(self.lost_mult * g);
                let churn_risk = model.and_then(|m| m.churn_risk(horizon, x, t_x, t));
                let stage = if s.occasions <= 1 && age_days <= self.new_days {
                    Stage::New
                } else if s_days <= self.active_mult * g {
                    Stage::Active
                } else if s_days <= self.dormant_mult * g {
                    Stage::Dormant
                } else {
                    let gone = s_days > self.lost_mult * g
                        || p_alive.is_some_and(|p| p < self.lost_p_alive);
                    let model_agrees = churn_risk.is_none_or(|c| c >= self.lost_churn_risk)
                        && p_alive.is_none_or(|p| p < self.sure_alive_p_alive);
                    if gone && model_agrees {
                        Stage::Lost
                    } else {
                        Stage::AtRisk
                    }
                };
                CustomerStage {
                    customer: s.customer,
                    stage,
                    days_since_last: s_days,
                    typical_gap_days: g,
                    population_gap,
                    p_alive,
                    churn_risk,
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::customer::bgnbd::BgNbd;
    use crate::customer::mbg_nbd::MbgNbd;
    use crate::customer::pareto_nbd::ParetoNbd;
    use crate::customer::select::RepeatModel;

    const DAY: i64 = 86_400;

    /// A customer with `occasions` occasions, first on `first_day`, last on
    /// `last_day`, median gap `gap` (days).
    fn summary(
        c: u32,
        occasions: u32,
        first_day: i64,
        last_day: i64,
        gap: Option<f64>,
    ) -> CustomerSummary {
        CustomerSummary {
            customer: CustomerIdx(c),
            occasions,
            orders: occasions,
            first_purchase: first_day * DAY,
            last_purchase: last_day * DAY,
            frequency: f64::from(occasions - 1),
            recency: (last_day - first_day) as f64,
            age: (200 - first_day) as f64,
            unit: Default::default(),
            monetary: 0.0,
            total_spend: 0.0,
            spend_complete: true,
            return_lines: 0,
            median_gap_days: gap,
        }
    }

    #[test]
    fn stage_lists_parse_and_unknown_stages_are_named() {
        assert_eq!(
            parse_stages("dormant, at_risk,").unwrap(),
            vec![Stage::Dormant, Stage::AtRisk]
        );
        assert_eq!(parse_stages("sleeping").unwrap(), vec![Stage::Dormant]);
        for s in [
            Stage::New,
            Stage::Active,
            Stage::Dormant,
            Stage::AtRisk,
            Stage::Lost,
        ] {
            assert_eq!(s.as_str().parse::<Stage>().unwrap(), s);
        }
        let e = parse_stages("dormant,zombie").unwrap_err();
        assert!(e.contains("zombie"), "{e}");
    }

    #[test]
    fn stages_follow_the_rule() {
        let reference = 200 * DAY;
        let summaries = vec![
            summary(0, 1, 190, 190, None),       // new
            summary(1, 5, 100, 190, Some(20.0)), // s = 10 <= 30: active
            summary(2, 5, 0, 150, Some(20.0)),   // s = 50 in (30, 60]: dormant
            summary(3, 5, 0, 100, Some(20.0)),   // s = 100 in (60, 120]: at risk
            summary(4, 5, 0, 50, Some(20.0)),    // s = 150 > 120: lost
            summary(5, 1, 100, 100, None),       // one-off, population gap 20: s = 100 -> at risk
            summary(6, 2, 199, 199, Some(0.0)),  // same-day repeat, gap floored to 1: s = 1: active
        ];
        let p = LifecycleParams::default();
        assert_eq!(p.population_gap_days(&summaries), 20.0);
        let out = p.classify(&summaries, reference, None).unwrap();
        let stages: Vec<Stage> = out.iter().map(|s| s.stage).collect();
        use Stage::*;
        assert_eq!(
            stages,
            vec![New, Active, Dormant, AtRisk, Lost, AtRisk, Active]
        );
        assert!(out[5].population_gap && !out[1].population_gap);
        assert_eq!(out[6].typical_gap_days, 1.0);
        assert_eq!(out[2].days_since_last, 50.0);
        assert!(out.iter().all(|s| s.p_alive.is_none()));
    }

    fn chosen(model: &RepeatModel, degenerate: bool) -> Option<Chosen<'_>> {
        Some(Chosen { model, degenerate })
    }

    #[test]
    fn p_alive_turns_at_risk_into_lost() {
        let reference = 200 * DAY;
        // Customer 3 of the test above, in days: x = 4, t_x = 100, T = 200.
        let summaries = vec![summary(3, 5, 0, 100, Some(20.0))];
        let dying = RepeatModel::BgNbd(BgNbd::new(0.5, 5.0, 5.0, 1.0).unwrap());
        let p = LifecycleParams::default();
        let out = p
            .classify(&summaries, reference, chosen(&dying, false))
            .unwrap();
        let pa = out[0].p_alive.unwrap();
        assert!(pa < 0.1, "{pa}");
        assert!(out[0].churn_risk.unwrap() > 0.9);
        assert_eq!(out[0].stage, Stage::Lost);
        let lenient = LifecycleParams {
            lost_p_alive: 0.0,
            ..Default::default()
        };
        let out = lenient
            .classify(&summaries, reference, chosen(&dying, false))
            .unwrap();
        assert_eq!(out[0].stage, Stage::AtRisk);
    }

    /// A model that calls a long-silent customer surely alive keeps her at
    /// risk; a degenerate one reports no P(alive), and its churn risk decides.
    #[test]
    fn the_stage_agrees_with_p_alive_and_churn_risk() {
        let reference = 200 * DAY;
        // x = 4, t_x = 50, T = 200 days, g = 20: s = 150 > 120, lost by rhythm.
        let summaries = vec![summary(4, 5, 0, 50, Some(20.0))];
        let p = LifecycleParams::default();
        // Almost nobody drops out, and purchases are rare: alive, but
        // unlikely to buy within 120 days.
        let immortal = RepeatModel::BgNbd(BgNbd::new(0.5, 2000.0, 1e-6, 100.0).unwrap());
        let out = p
            .classify(&summaries, reference, chosen(&immortal, false))
            .unwrap();
        assert!(out[0].p_alive.unwrap() >= 0.999);
        assert_eq!(out[0].stage, Stage::AtRisk);
        // The same fit flagged degenerate: no P(alive), churn risk decides.
        let out = p
            .classify(&summaries, reference, chosen(&immortal, true))
            .unwrap();
        assert_eq!(out[0].p_alive, None);
        let risk = out[0].churn_risk.unwrap();
        assert!(risk >= 0.5, "{risk}");
        assert_eq!(out[0].stage, Stage::Lost);
        // A frequent buyer by the model: the churn risk is low, not lost.
        let busy = RepeatModel::BgNbd(BgNbd::new(5.0, 5.0, 1e-6, 100.0).unwrap());
        let out = p
            .classify(&summaries, reference, chosen(&busy, true))
            .unwrap();
        assert!(out[0].churn_risk.unwrap() < 0.5);
        assert_eq!(out[0].stage, Stage::AtRisk);
    }

    /// The documented invariant on many customers and models: lost implies
    /// a churn risk of at least `lost_churn_risk` and no P(alive) of 0.999.
    #[test]
    fn lost_never_comes_with_a_sure_p_alive() {
        // The helper's summaries are at day 200.
        let reference = 200 * DAY;
        let summaries: Vec<CustomerSummary> = (0..200)
            .map(|i| {
                let first = i64::from(i % 50);
                let occasions = 1 + i % 7;
                let last = if occasions > 1 {
                    first + 1 + i64::from(i * 7) % (199 - first)
                } else {
                    first
                };
                let gap = (occasions > 1).then(|| (last - first) as f64 / f64::from(occasions - 1));
                summary(i, occasions, first, last, gap)
            })
            .collect();
        let p = LifecycleParams::default();
        for (model, degenerate) in [
            (
                RepeatModel::BgNbd(BgNbd::new(0.5, 5.0, 0.8, 2.4).unwrap()),
                false,
            ),
            (
                RepeatModel::BgNbd(BgNbd::new(0.5, 5.0, 1e-9, 2.4).unwrap()),
                true,
            ),
            (
                RepeatModel::ParetoNbd(ParetoNbd::new(0.55, 10.6, 0.6, 11.7).unwrap()),
                false,
            ),
            (
                RepeatModel::MbgNbd(MbgNbd::new(0.52, 6.2, 0.89, 1.6).unwrap()),
                false,
            ),
        ] {
            let out = p
                .classify(&summaries, reference, chosen(&model, degenerate))
                .unwrap();
            let mut lost = 0;
            for s in out.iter().filter(|s| s.stage == Stage::Lost) {
                assert!(s.p_alive.is_none_or(|p| p < 0.999), "{s:?}");
                assert!(s.churn_risk.unwrap() >= 0.5, "{s:?}");
                lost += 1;
            }
            assert!(lost > 0, "{model:?}: nobody lost, the check is empty");
        }
    }

    #[test]
    fn no_repeat_customer_uses_the_default_gap() {
        let summaries = vec![summary(0, 1, 100, 100, None)];
        let p = LifecycleParams::default();
        assert_eq!(p.population_gap_days(&summaries), 30.0);
        let out = p.classify(&summaries, 140 * DAY, None).unwrap();
        assert_eq!(out[0].stage, Stage::Active); // s = 40 <= 45
    }

    #[test]
    fn validation_and_serde() {
        let bad = LifecycleParams {
            dormant_mult: 1.0,
            ..Default::default()
        };
        let e = bad.classify(&[], 0, None).unwrap_err();
        assert!(e.to_string().contains("dormant_mult"), "{e}");
        assert!(
            LifecycleParams {
                lost_p_alive: 1.5,
                ..Default::default()
            }
            .check()
            .is_err()
        );
        assert!(
            LifecycleParams {
                min_gap_days: 0.0,
                ..Default::default()
            }
            .check()
            .is_err()
        );
        let p: LifecycleParams = serde_json::from_str(r#"{"new_days": 14}"#).unwrap();
        assert_eq!(p.new_days, 14.0);
        assert_eq!(p.lost_mult, 6.0);
        assert_eq!(
            serde_json::to_string(&Stage::AtRisk).unwrap(),
            r#""at_risk""#
        );
        assert_eq!(Stage::AtRisk.as_str(), "at_risk");
    }
}
