//! `encore-train recommend`: lists for many customers (or items) at once, as CSV.

use anyhow::{Context, Result, bail};
use encore_model::engine::{Engine, ListFilter};
use rayon::prelude::*;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;

/// Which list to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ListKind {
    /// Personalised recommendations per customer: `customer_id,rank,item_id,score`.
    ForYou,
    /// Similar items per item: `item_id,rank,similar_item_id,score`.
    Similar,
    /// Co-purchase neighbours per item: `item_id,rank,similar_item_id,score`.
    BoughtTogether,
}

/// Counts of a batch run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchSummary {
    pub rows_in: usize,
    /// Ids the model does not know (customers get the fallback list, items nothing).
    pub unknown: usize,
    pub lines_out: usize,
}

/// Reads ids, one a line (blank lines and a `customer_id`/`item_id` header skipped).
pub fn read_ids(path: &Path) -> Result<Vec<String>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut ids = Vec::new();
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line =
            line.with_context(|| format!("{}:{}: cannot read line", path.display(), n + 1))?;
        let id = line.trim();
        if id.is_empty() || (n == 0 && (id == "customer_id" || id == "item_id")) {
            continue;
        }
        ids.push(id.to_string());
    }
    Ok(ids)
}

/// Customers are scored in blocks of this many, so output streams while memory stays flat.
const BLOCK: usize = 4096;

/// Writes `kind` lists of length `k` for `ids` (all customers or items when `None`) to `out`.
///
/// The "for you" list is the one `GET /v1/customers/{id}/recommendations`
/// serves: without `include_purchased` items the customer has not bought
/// (ALS, scored in blocks), with it the repeat-aware list ([`Engine::for_you`]).
pub fn write_lists(
    engine: &Engine,
    kind: ListKind,
    ids: Option<Vec<String>>,
    k: usize,
    include_purchased: bool,
    out: &mut dyn Write,
) -> Result<BatchSummary> {
    if !(1..=1000).contains(&k) {
        bail!("--k must be between 1 and 1000, got {k}");
    }
    if include_purchased && kind != ListKind::ForYou {
        bail!("--include-purchased applies to --list for-you only");
    }
    let map = match kind {
        ListKind::ForYou => engine.customers(),
        ListKind::Similar | ListKind::BoughtTogether => engine.items(),
    };
    let ids: Vec<String> = ids.unwrap_or_else(|| map.ids().map(str::to_string).collect());
    let mut summary = BatchSummary {
        rows_in: ids.len(),
        ..Default::default()
    };
    let header = match kind {
        ListKind::ForYou => "customer_id,rank,item_id,score",
        _ => "item_id,rank,similar_item_id,score",
    };
    writeln!(out, "{header}")?;
    let mut text = String::new();
    for block in ids.chunks(BLOCK) {
        let idx: Vec<Option<u32>> = block.iter().map(|id| map.get(id)).collect();
        let lists = lists_for(engine, kind, &idx, k, include_purchased);
        text.clear();
        for ((id, i), list) in block.iter().zip(&idx).zip(&lists) {
            if i.is_none() {
                summary.unknown += 1;
            }
            for (rank, &(item, score)) in list.iter().enumerate() {
                use std::fmt::Write as _;
                let _ = writeln!(
                    text,
                    "{},{},{},{}",
                    csv_field(id),
                    rank + 1,
                    csv_field(engine.items().id(item)),
                    score
                );
                summary.lines_out += 1;
            }
        }
        out.write_all(text.as_bytes())?;
    }
    out.flush()?;
    Ok(summary)
}

/// The `kind` lists of length `k` for the indices `idx` (customers for
/// for-you, items otherwise; `None` for an id the model does not know), in
/// order, computed in parallel: what [`write_lists`] writes, and what the
/// Python package's `Model.recommend`, `similar` and `bought_together`
/// return. An unknown customer gets the fallback list, an unknown item an
/// empty list.
pub fn lists_for(
    engine: &Engine,
    kind: ListKind,
    idx: &[Option<u32>],
    k: usize,
    include_purchased: bool,
) -> Vec<Vec<(u32, f32)>> {
    let filter = ListFilter::default();
    match kind {
        ListKind::ForYou if include_purchased => {
            let filter = ListFilter {
                include_purchased: true,
                ..ListFilter::default()
            };
            idx.par_iter()
                .map(|&c| engine.for_you(c, k, &filter).1)
                .collect()
        }
        ListKind::ForYou => {
            let fallback = engine.fallback(k, &filter);
            let unavailable = (0..engine.items().len() as u32)
                .filter(|&i| !engine.item_meta(i).available)
                .count();
            let known: Vec<u32> = idx
                .iter()
                .flatten()
                .copied()
                .filter(|&c| engine.history().row_nnz(c as usize) > 0)
                .collect();
            let fetched =
                engine
                    .als()
                    .recommend_batch(&known, k + unavailable, Some(engine.history()));
            let mut fetched = fetched.into_iter();
            idx.iter()
                .map(|c| match c {
                    Some(c) if engine.history().row_nnz(*c as usize) > 0 => fetched
                        .next()
                        .expect("one list per known customer")
                        .into_iter()
                        .filter(|&(i, _)| engine.item_meta(i).available)
                        .take(k)
                        .collect(),
                    _ => fallback.clone(),
                })
                .collect()
        }
        ListKind::Similar => idx
            .par_iter()
            .map(|i| i.map_or_else(Vec::new, |i| engine.similar(i, k, &filter)))
            .collect(),
        ListKind::BoughtTogether => idx
            .par_iter()
            .map(|i| i.map_or_else(Vec::new, |i| engine.bought_together(i, k, &filter)))
            .collect(),
    }
}

/// Quotes a CSV field when it needs it.
fn csv_field(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\"")).into()
    } else {
        s.into()
    }
}
