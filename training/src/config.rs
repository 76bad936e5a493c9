//! The training configuration file (TOML).
//!
//! Every key is optional; missing keys take the defaults of
//! [`EngineConfig`]. Unknown keys are an error naming the key, so a typo
//! never silently trains with a default.
//!
//! ```toml
//! [als]
//! factors = 64
//! regularization = 0.01
//! alpha = 10.0
//! iterations = 15
//! seed = 42
//!
//! [copurchase]
//! basis = "orders"
//! similarity = "cosine"
//! ```

use anyhow::{Context, Result};
use encore_model::pipeline::EngineConfig;
use std::path::Path;

/// Reads `path` (or the defaults when `None`) and validates it.
pub fn load_config(path: Option<&Path>) -> Result<EngineConfig> {
    let config = match path {
        None => EngineConfig::default(),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read config file {}", p.display()))?;
            parse_config(&text).with_context(|| format!("config file {}", p.display()))?
        }
    };
    Ok(config)
}

/// Parses and validates a TOML configuration.
pub fn parse_config(text: &str) -> Result<EngineConfig> {
    let config: EngineConfig = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
    config.validate()?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let c = parse_config("[als]\nfactors = 8\n").unwrap();
        assert_eq!(c.als.factors, 8);
        assert_eq!(c.als.iterations, EngineConfig::default().als.iterations);
    }

    #[test]
    fn unknown_key_is_named() {
        let err = parse_config("[als]\nfactorz = 8\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("factorz"), "{err}");
    }

    #[test]
    fn bad_value_is_named() {
        let err = format!(
            "{:#}",
            parse_config("[copurchase]\nbasis = \"baskets\"\n").unwrap_err()
        );
        assert!(err.contains("copurchase.basis"), "{err}");
        let err = format!("{:#}", parse_config("[als]\nfactors = 0\n").unwrap_err());
        assert!(
            err.contains("config key 'als.factors': 0: must be"),
            "{err}"
        );
        assert_eq!(err.matches("must be").count(), 1, "said twice: {err}");
    }

    /// The example of docs/configuration.md ("Model settings") parses,
    /// validates and states the defaults it claims (only
    /// `recency_half_life_days` is commented out), so the docs cannot drift
    /// from the code.
    #[test]
    fn configuration_md_example_is_the_defaults() {
        let doc = include_str!("../../docs/configuration.md");
        let section = &doc[doc.find("## Model settings").unwrap()..];
        let start = section.find("```toml\n").unwrap() + "```toml\n".len();
        let end = start + section[start..].find("```").unwrap();
        let config = parse_config(&section[start..end]).unwrap();
        assert_eq!(config, EngineConfig::default());
    }

    /// A written config (`tune --out-config`) holds the decimals a person
    /// would write, not f32 values widened to f64, and reads back the same.
    #[test]
    fn written_config_keeps_decimals_and_round_trips() {
        let config = EngineConfig::default();
        let text = toml::to_string(&config).unwrap();
        assert!(text.contains("regularization = 0.01\n"), "{text}");
        // Every default is a short decimal: no float needs more than 6
        // significant digits (an f32 widened to f64 needs 16 or more).
        for line in text.lines() {
            let Some((_, value)) = line.split_once(" = ") else {
                continue;
            };
            if value.contains('.') && value.parse::<f64>().is_ok() {
                let digits: String = value.chars().filter(char::is_ascii_digit).collect();
                let significant = digits.trim_start_matches('0').trim_end_matches('0');
                assert!(significant.len() <= 6, "{line}");
            }
        }
        assert_eq!(parse_config(&text).unwrap(), config);
    }

    #[test]
    fn customer_settings_are_checked_by_key() {
        let err = format!(
            "{:#}",
            parse_config("[customers.lifecycle]\nlost_p_alive = 2.0\n").unwrap_err()
        );
        assert!(
            err.contains("customers.lifecycle") && err.contains("lost_p_alive"),
            "{err}"
        );
        let err = format!("{:#}", parse_config("[customers]\ntypo = 1\n").unwrap_err());
        assert!(err.contains("typo"), "{err}");
    }
}
