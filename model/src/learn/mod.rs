//! Learners shared by the models: gradient-boosted trees ([`boosting`]) and
//! the logistic regression ([`logistic`]) that the propensity model and the
//! "for you" re-ranker both fit.

pub mod boosting;
pub mod logistic;
