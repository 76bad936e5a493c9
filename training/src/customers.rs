//! `encore-train customers` and `encore-train audience`: the customer book of
//! a model as CSV, and reactivation audiences as CSV or NDJSON.

use anyhow::{Result, anyhow};
use encore_data::timestamp::{format_date, parse_timestamp};
use encore_model::customer::lifecycle::parse_stages;
use encore_model::engine::Engine;
use encore_model::outreach::{AudienceQuery, SettingProblem};
use std::io::Write;

/// Customers computed per step of an audience (in parallel), so that output
/// streams while memory stays flat.
const CHUNK: usize = 1024;

/// Output format of an audience.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AudienceFormat {
    Csv,
    Ndjson,
}

/// An audience as `encore-train audience` takes it (its flags) and
/// `Model.audience` in Python (its arguments): the stages and the campaign
/// date as text, read and checked by [`AudienceArgs::query`].
#[derive(Debug, Clone, clap::Args)]
pub struct AudienceArgs {
    /// Lifecycle stages to include, comma separated (new, active, dormant, at_risk, lost).
    #[arg(long, default_value = "dormant,at_risk")]
    pub stage: String,
    /// RFM segments to include, comma separated [default: all].
    #[arg(long, value_delimiter = ',')]
    pub segment: Vec<String>,
    /// Only customers with at least this P(alive) (refused when the
    /// model reports no P(alive): use --max-churn-risk).
    #[arg(long)]
    pub min_p_alive: Option<f64>,
    /// Only customers whose churn risk is at most this.
    #[arg(long)]
    pub max_churn_risk: Option<f64>,
    /// Only customers with at least this CLV.
    #[arg(long)]
    pub min_clv: Option<f64>,
    /// Items per customer.
    #[arg(long, default_value_t = 5)]
    pub k: usize,
    /// At most this many customers (highest CLV first).
    #[arg(long)]
    pub limit: Option<usize>,
    /// First day of the campaign [default: the model's last purchase date].
    #[arg(long)]
    pub as_of: Option<String>,
}

impl AudienceArgs {
    /// The query these settings ask for, or the first setting that is not
    /// one: a stage list naming an unknown stage, a date that is not one,
    /// then [`AudienceQuery::setting_problem`]. Empty segment names are
    /// skipped, as empty stage names are. What the model itself cannot
    /// filter by is [`Engine::audience_setting_problem`].
    pub fn query(&self) -> Result<AudienceQuery, SettingProblem> {
        let stages = parse_stages(&self.stage).map_err(|e| SettingProblem {
            setting: "stages",
            problem: format!("names an {e}"),
        })?;
        let as_of = match &self.as_of {
            None => None,
            Some(date) => Some(parse_timestamp(date).ok_or_else(|| SettingProblem {
                setting: "as_of",
                problem: format!("'{date}' is not a date (YYYY-MM-DD)"),
            })?),
        };
        let query = AudienceQuery {
            stages,
            segments: self
                .segment
                .iter()
                .filter(|s| !s.is_empty())
                .cloned()
                .collect(),
            min_p_alive: self.min_p_alive,
            max_churn_risk: self.max_churn_risk,
            min_clv: self.min_clv,
            k: self.k,
            limit: self.limit,
            as_of,
            ..AudienceQuery::default()
        };
        match query.setting_problem() {
            Some(problem) => Err(problem),
            None => Ok(query),
        }
    }
}

/// A [`SettingProblem`] as `encore-train audience` reports it, the setting
/// named by its flag: `--stage names an unknown stage 'x': ...`.
pub fn flag_problem(SettingProblem { setting, problem }: SettingProblem) -> anyhow::Error {
    let flag = match setting {
        "stages" => "stage".to_owned(),
        "segments" => "segment".to_owned(),
        other => other.replace('_', "-"),
    };
    anyhow!("--{flag} {problem}")
}

/// Writes the audience of `query` to `out`; returns the number of rows.
/// Refuses ([`flag_problem`]) a query the model cannot filter by
/// ([`Engine::audience_setting_problem`]); `query` itself is checked
/// ([`AudienceArgs::query`]).
pub fn write_audience(
    engine: &Engine,
    query: &AudienceQuery,
    format: AudienceFormat,
    out: &mut dyn Write,
) -> Result<usize> {
    if let Some(problem) = engine.audience_setting_problem(query) {
        return Err(flag_problem(problem));
    }
    let members = engine.audience_members(query);
    if format == AudienceFormat::Csv {
        out.write_all(&Engine::audience_csv_header(query.k))?;
    }
    let mut buf = Vec::new();
    for chunk in members.chunks(CHUNK) {
        buf.clear();
        for row in engine.audience_rows(chunk, query) {
            match format {
                AudienceFormat::Csv => engine.write_audience_csv(&row, query.k, &mut buf),
                AudienceFormat::Ndjson => engine.write_audience_ndjson(&row, &mut buf),
            }
        }
        out.write_all(&buf)?;
    }
    Ok(members.len())
}

/// The header of [`write_customers`].
pub const CUSTOMERS_HEADER: &str = "customer_id,orders,first_purchase,last_purchase,total_spend,\
average_order_value,spend_complete,recency_days,r,f,m,segment,behaviour_segment,lifecycle_stage,\
typical_gap_days,p_alive,churn_risk,expected_purchases_30d,expected_purchases_90d,\
predicted_next_purchase_date,buy_within_30d_probability,clv";

/// Writes one CSV row per profiled customer (every field of the profile);
/// returns the number of rows.
pub fn write_customers(engine: &Engine, out: &mut dyn Write) -> Result<usize> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(CUSTOMERS_HEADER.split(','))?;
    let num = |v: Option<f64>| v.map(|v| format!("{v:.6}")).unwrap_or_default();
    let mut rows = 0;
    for (c, p) in engine.customer_book().profiles().enumerate() {
        let Some(p) = p else { continue };
        w.write_record([
            engine.customers().id(c as u32).to_string(),
            p.orders.to_string(),
            format_date(p.first_purchase),
            format_date(p.last_purchase),
            format!("{:.2}", p.total_spend),
            format!("{:.2}", p.average_order_value),
            p.spend_complete.to_string(),
            format!("{:.2}", p.recency_days),
            p.r.to_string(),
            p.f.to_string(),
            p.m.to_string(),
            p.segment.clone(),
            p.behaviour_segment.clone().unwrap_or_default(),
            p.stage.as_str().to_string(),
            format!("{:.2}", p.typical_gap_days),
            num(p.p_alive),
            num(p.churn_risk),
            num(p.expected_purchases_30d),
            num(p.expected_purchases_90d),
            p.predicted_next_purchase
                .map(format_date)
                .unwrap_or_default(),
            num(p.buy_within_30d_probability),
            num(p.clv),
        ])?;
        rows += 1;
    }
    w.flush()?;
    Ok(rows)
}
