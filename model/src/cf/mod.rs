//! Collaborative-filtering and neighbourhood models.
//!
//! * [`tifu`]: repeat-aware "for you" scores (TIFU-KNN: time-decayed personal
//!   item frequencies smoothed by similar customers), optionally blended with
//!   CF scores for never-bought items.
//! * [`ranker`]: the learned re-ranker of the "for you" candidates
//!   (repeat-aware, ALS and popular items): boosted trees ([`crate::learn::boosting`]) or a
//!   logistic regression, trained on inner time or next-order cuts.
//! * [`ease`]: EASE, the closed-form item-item model (dense, catalogs up to
//!   about 20k items).

pub mod als;
pub mod ease;
pub mod item_knn;
pub mod popularity;
pub mod ranker;
pub mod tifu;
