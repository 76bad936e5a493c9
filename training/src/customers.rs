//! `encore-train customers` and `encore-train audience`: the customer book of
//! a model as CSV, and reactivation audiences as CSV or NDJSON.

use anyhow::{Result, bail};
use encore_data::timestamp::format_date;
use encore_model::engine::Engine;
use encore_model::outreach::AudienceQuery;
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

/// Writes the audience of `query` to `out`; returns the number of rows.
pub fn write_audience(
    engine: &Engine,
    query: &AudienceQuery,
    format: AudienceFormat,
    out: &mut dyn Write,
) -> Result<usize> {
    if !(1..=200).contains(&query.k) {
        bail!("--k must be between 1 and 200, got {}", query.k);
    }
    if let Some(why) = engine.unknown_segments_message(&query.segments) {
        bail!("--segment: {why}");
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
