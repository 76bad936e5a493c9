//! Encore's models: collaborative filtering, co-purchase neighbours, popularity,
//! nearest-neighbour indexes over item embeddings, ranking metrics and the
//! versioned artifact that carries a trained engine from `encore-train` to
//! `encore-serve`.

/// `From` impls for the variants of an error enum that wrap another error
/// and say it in their message (`#[error("optimiser: {0}")]`): thiserror's
/// `#[from]` would also return it from `source()`, and a printed chain would
/// say it twice (see `encore_data`'s crate docs).
macro_rules! error_from {
    ($outer:ty { $($variant:ident($inner:ty)),+ $(,)? }) => {
        $(impl From<$inner> for $outer {
            fn from(e: $inner) -> Self {
                Self::$variant(e)
            }
        })+
    };
}
pub(crate) use error_from;

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
mod setting;
pub mod shard;
pub mod topk;
