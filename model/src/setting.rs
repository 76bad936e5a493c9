//! Checks of settings and model parameters, and the one error they give: a
//! setting out of range.
//!
//! Every component has its own error enum whose `InvalidParam` variant names
//! the component ("invalid ALS parameter ..."); [`invalid_setting_from!`]
//! turns an [`InvalidSetting`] into it, so a `check` can use `?` on the
//! helpers below.

use std::fmt::Display;

/// A setting out of range: its name, its value as given, and the rule it
/// breaks.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct InvalidSetting {
    pub name: &'static str,
    pub value: String,
    pub reason: &'static str,
}

impl InvalidSetting {
    pub(crate) fn new(name: &'static str, value: impl Display, reason: &'static str) -> Self {
        InvalidSetting {
            name,
            value: value.to_string(),
            reason,
        }
    }
}

/// The first of `named` that `ok` refuses, as the error `reason`.
fn first_refused<T: Copy + Display>(
    named: &[(&'static str, T)],
    ok: impl Fn(T) -> bool,
    reason: &'static str,
) -> Result<(), InvalidSetting> {
    match named.iter().find(|&&(_, v)| !ok(v)) {
        Some(&(name, v)) => Err(InvalidSetting::new(name, v, reason)),
        None => Ok(()),
    }
}

/// The first of `named` that is not finite or that `ok` refuses.
fn first_not_finite_and<T: Copy + Display + Into<f64>>(
    named: &[(&'static str, T)],
    ok: fn(f64) -> bool,
    reason: &'static str,
) -> Result<(), InvalidSetting> {
    first_refused(named, |v| v.into().is_finite() && ok(v.into()), reason)
}

/// Each value finite and at least 0.
pub(crate) fn non_negative<T: Copy + Display + Into<f64>>(
    named: &[(&'static str, T)],
) -> Result<(), InvalidSetting> {
    first_not_finite_and(named, |v| v >= 0.0, "must be a finite non-negative number")
}

/// Each value finite and above 0.
pub(crate) fn positive<T: Copy + Display + Into<f64>>(
    named: &[(&'static str, T)],
) -> Result<(), InvalidSetting> {
    first_not_finite_and(named, |v| v > 0.0, "must be a finite positive number")
}

/// Each value within `[0, 1]`.
pub(crate) fn unit_interval(named: &[(&'static str, f64)]) -> Result<(), InvalidSetting> {
    first_refused(named, |v| (0.0..=1.0).contains(&v), "must be within [0, 1]")
}

/// Each count at least 1.
pub(crate) fn at_least_one<T: Copy + Display + PartialOrd + From<u8>>(
    named: &[(&'static str, T)],
) -> Result<(), InvalidSetting> {
    first_refused(named, |n| n >= T::from(1), "must be at least 1")
}

/// `From<InvalidSetting>` for an error enum whose `InvalidParam` variant has
/// the fields `name`, `value` (a `String`) and `reason`.
macro_rules! invalid_setting_from {
    ($error:ty) => {
        impl From<$crate::setting::InvalidSetting> for $error {
            fn from(e: $crate::setting::InvalidSetting) -> Self {
                Self::InvalidParam {
                    name: e.name,
                    value: e.value,
                    reason: e.reason,
                }
            }
        }
    };
}
pub(crate) use invalid_setting_from;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_value_out_of_range_is_named_with_its_value_as_given() {
        assert_eq!(non_negative(&[("a", 0.0), ("b", 1.5)]), Ok(()));
        let e = non_negative(&[("a", 0.0), ("b", -0.1_f32), ("c", -2.0)]).unwrap_err();
        assert_eq!(
            e,
            InvalidSetting::new("b", "-0.1", "must be a finite non-negative number")
        );
        assert_eq!(non_negative(&[("a", f64::NAN)]).unwrap_err().name, "a");
        assert_eq!(positive(&[("a", 0.0)]).unwrap_err().value, "0");
        assert!(positive(&[("a", f64::INFINITY)]).is_err());
        assert!(positive(&[("a", 1e-300)]).is_ok());
        assert!(unit_interval(&[("p", 0.0), ("q", 1.0)]).is_ok());
        assert_eq!(unit_interval(&[("p", 1.01)]).unwrap_err().name, "p");
        assert!(unit_interval(&[("p", f64::NAN)]).is_err());
        assert_eq!(
            at_least_one(&[("k", 3), ("runs", 0)]).unwrap_err(),
            InvalidSetting::new("runs", 0, "must be at least 1")
        );
    }
}
