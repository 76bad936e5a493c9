//! The text of an error and its causes for a person at a terminal.
//!
//! Many errors here say their cause in their own message (`{path}: {source}`)
//! and return it from `source()` as well, so that a caller printing only the
//! top message still sees why. Printing the whole chain would then say each
//! cause twice; [`describe`] leaves out a cause whose text the message above
//! it already holds.
//!
//! ```
//! use std::io;
//!
//! #[derive(Debug)]
//! struct Read(io::Error);
//! impl std::fmt::Display for Read {
//!     fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
//!         write!(f, "history.csv: {}", self.0)
//!     }
//! }
//! impl std::error::Error for Read {
//!     fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
//!         Some(&self.0)
//!     }
//! }
//! let e = Read(io::Error::new(io::ErrorKind::NotFound, "no such file"));
//! assert_eq!(encore_data::error_chain::describe(&e), "history.csv: no such file");
//! ```

use std::error::Error;

/// `error`'s message, then "Caused by:" and each cause not already said by
/// the message above it (numbered when more than one), as `anyhow` prints a
/// chain.
pub fn describe(error: &(dyn Error + 'static)) -> String {
    let mut said = error.to_string();
    let mut causes: Vec<String> = Vec::new();
    let mut next = error.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !said.contains(&text) {
            causes.push(text.clone());
        }
        said = text;
        next = cause.source();
    }
    let mut out = error.to_string();
    match causes.as_slice() {
        [] => {}
        [one] => out.push_str(&format!("\n\nCaused by:\n    {one}")),
        many => {
            out.push_str("\n\nCaused by:");
            for (n, c) in many.iter().enumerate() {
                out.push_str(&format!("\n    {n}: {c}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);
    impl fmt::Display for Layer {
        fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(self.0)
        }
    }
    impl Error for Layer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1.as_deref().map(|l| l as &(dyn Error + 'static))
        }
    }

    fn chain(texts: &[&'static str]) -> Layer {
        let mut layer = None;
        for t in texts.iter().rev() {
            layer = Some(Box::new(Layer(t, layer)));
        }
        *layer.unwrap()
    }

    #[test]
    fn causes_said_above_are_left_out_and_new_ones_kept() {
        assert_eq!(describe(&chain(&["alone"])), "alone");
        assert_eq!(
            describe(&chain(&[
                "config file a.toml",
                "bad key: must be 1",
                "must be 1"
            ])),
            "config file a.toml\n\nCaused by:\n    bad key: must be 1"
        );
        assert_eq!(
            describe(&chain(&["top", "middle", "bottom"])),
            "top\n\nCaused by:\n    0: middle\n    1: bottom"
        );
    }
}
