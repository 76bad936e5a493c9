//! Settings stored as `f32` written as the decimal they were given in.
//!
//! Formats without an `f32` type (TOML) widen the value to `f64`, so `0.01`
//! came out as `0.009999999776482582`. Serialising the `f64` nearest to the
//! `f32`'s shortest decimal instead writes `0.01`, and reading it back as an
//! `f32` gives the same bits. Use with `#[serde(serialize_with =
//! "crate::serde_f32::shortest")]`.

use serde::Serializer;

/// Serialises `v` as the `f64` of its shortest round-trip decimal.
pub fn shortest<S: Serializer>(v: &f32, s: S) -> Result<S::Ok, S::Error> {
    let widened = v.to_string().parse::<f64>().unwrap_or(f64::from(*v));
    s.serialize_f64(widened)
}

#[cfg(test)]
mod tests {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Setting {
        #[serde(serialize_with = "super::shortest")]
        x: f32,
    }

    #[test]
    fn toml_writes_the_decimal_and_reads_back_the_same_bits() {
        for x in [0.01f32, 0.9, 0.3, 1e-7, 123.456, 0.0, 2.5] {
            let text = toml::to_string(&Setting { x }).unwrap();
            let written: toml::Table = toml::from_str(&text).unwrap();
            let decimal: f64 = x.to_string().parse().unwrap();
            assert_eq!(written["x"].as_float(), Some(decimal), "{text}");
            let back: Setting = toml::from_str(&text).unwrap();
            assert_eq!(back.x.to_bits(), x.to_bits(), "{text}");
        }
    }
}
