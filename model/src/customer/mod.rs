//! Customer intelligence: who is still a customer, how much will they buy,
//! what are they worth, and how is the base doing.
//!
//! These models look at customers rather than items and complement the
//! recommenders: they decide *whom* to target and *when* (a "next purchase"
//! engine), while `cf` decides *what* to show.
//!
//! * [`summary`]: per-customer transaction summaries at a reference time
//!   (purchase occasions, frequency / recency / age `(x, t_x, T)`, average
//!   repeat spend, net spend) — the input of everything below.
//! * [`bgnbd`]: the BG/NBD model (Fader, Hardie & Lee 2005): fitted by maximum
//!   likelihood, it gives each customer's probability of still being active
//!   and the expected number of purchases over any horizon, hence a "next
//!   purchase by" date.
//! * [`pareto_nbd`] and [`mbg_nbd`]: the Pareto/NBD (Schmittlein, Morrison &
//!   Colombo 1987) and MBG/NBD (Batislam, Denizel & Filiztekin 2007) models,
//!   fitted the same way ([`repeat`] holds what they share); unlike BG/NBD
//!   they let a customer who never came back be gone.
//! * [`select`]: the three fitted on the same history, one selected by the
//!   log-likelihood of a held-out validation window; it gives every profile's
//!   P(alive) (withheld when the fit is degenerate) and churn risk.
//! * [`gamma_gamma`]: the Gamma-Gamma model of spend per transaction, and
//!   customer lifetime value (CLV) from BG/NBD purchases times expected spend,
//!   discounted.
//! * [`rfm`]: recency / frequency / monetary quintile scores and named
//!   segments (champions, at risk, …) from a configurable map — simple,
//!   explainable, no model fitting.
//! * [`lifecycle`]: new / active / dormant / at-risk / lost stages relative to
//!   each customer's own buying rhythm, made to agree with the selected
//!   model's P(alive) and churn risk.
//! * [`propensity`]: the probability of buying within the next `H` days, a
//!   logistic regression (linfa-logistic) on RFM, tenure, trend, rhythm and
//!   BG/NBD features, trained on the customers' own most recent `H` days.
//! * [`segments`]: behavioural segments by k-means (linfa-clustering) on
//!   standardised recency, frequency, spend and tenure, labelled from their
//!   centroids.
//! * [`kpis`]: repurchase KPIs (repeat-buyer and repeat-order rates per month
//!   and per first-purchase cohort, cohort retention) for reporting.
//! * [`book`]: all of the above fitted once at the end of the training data
//!   and kept per customer: what the artifact stores and the server answers from.
//! * [`replenishment`]: per-item replenishment cycles (days per unit, shrunk
//!   towards category and global priors) and each customer's "buy again" list,
//!   ranked by the probability of re-buying an item soon.
//! * [`holdout`]: the book and the replenishment model fitted before a cutoff
//!   and checked against what customers did after it: the buying
//!   probability's ROC AUC, Brier score and reliability against simple
//!   rankings, and the errors of the predicted dates against "own median
//!   gap" baselines.
//!
//! The Nelder–Mead optimiser and the special functions (`ln Γ`, `₂F₁`) the
//! models are built on are in [`crate::math`]; the propensity model's
//! logistic regression is in [`crate::learn`].
//!
//! ```
//! use encore_data::PurchaseLog;
//! use encore_model::customer::summary::{summarize, SummaryParams, TimeUnit};
//! use encore_model::customer::bgnbd::BgNbd;
//!
//! let mut log = PurchaseLog::default();
//! let day = 86_400;
//! log.push("o1", "alice", "tea", 0, 1.0, 4.0);
//! log.push("o2", "alice", "tea", 14 * day, 1.0, 4.0);
//! log.push("o3", "bob", "mug", 7 * day, 1.0, 9.0);
//! let params = SummaryParams { unit: TimeUnit::Weeks, ..Default::default() };
//! let summaries = summarize(&log, 28 * day, &params);
//! let alice = summaries[0].repeat_summary();
//! assert_eq!(alice.tuple(), (1.0, 2.0, 4.0));
//!
//! // With parameters fitted elsewhere (here: the published CDNOW estimates).
//! let model = BgNbd::new(0.2426, 4.4135, 0.7929, 2.4258).unwrap();
//! let p = model.p_alive(alice.x, alice.t_x, alice.t);
//! let next_quarter = model.expected_purchases(13.0, alice.x, alice.t_x, alice.t).unwrap();
//! assert!(p > 0.5 && next_quarter > 0.0);
//! ```

pub mod bgnbd;
pub mod book;
pub mod gamma_gamma;
pub mod holdout;
pub mod kpis;
pub mod lifecycle;
pub mod mbg_nbd;
pub mod orders;
pub mod pareto_nbd;
pub mod propensity;
pub mod repeat;
pub mod replenishment;
pub mod rfm;
pub mod segments;
pub mod select;
pub mod summary;
