//! Numerical building blocks shared by the models and the reports: the
//! Nelder–Mead optimiser ([`optim`]) the customer models are fitted with, and
//! the special functions and distribution tails ([`special`]: `ln Γ`, `₂F₁`,
//! the incomplete gamma, the normal and chi-square tails the experiment
//! report tests with).

pub mod optim;
pub mod special;
