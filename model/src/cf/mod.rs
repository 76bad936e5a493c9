//! Collaborative-filtering and neighbourhood models.

pub mod als;
pub mod item_knn;
pub mod popularity;
