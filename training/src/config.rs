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
        assert!(err.contains("factors"), "{err}");
    }
}
