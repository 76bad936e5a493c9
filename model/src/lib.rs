//! Encore's models: collaborative filtering, co-purchase neighbours, popularity,
//! nearest-neighbour indexes over item embeddings, ranking metrics and the
//! versioned artifact that carries a trained engine from `encore-train` to
//! `encore-serve`.

pub mod ann;
pub mod artifact;
pub mod cf;
pub mod customer;
pub mod engine;
pub mod experiment;
mod le;
pub mod learn;
pub mod manifest;
pub mod math;
pub mod metrics;
pub mod outreach;
pub mod pipeline;
pub mod serde_f32;
pub mod topk;
