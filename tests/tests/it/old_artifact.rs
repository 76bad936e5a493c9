//! An artifact written by an older build stays readable or is refused
//! cleanly. `tests/fixtures/artifact-format-2` is a small artifact of format
//! version 2, committed as `encore-train fit` wrote it (see its README):
//! every later build either loads it and answers from it, or refuses it as
//! `model_incompatible` with a message naming the version, never as a
//! damaged file and never with a panic.

use encore_model::artifact::{ArtifactError, load};
use encore_model::manifest::FORMAT_VERSION;
use encore_serving::{ApiError, Code};
use std::path::{Path, PathBuf};

/// The format version the fixture was written in.
const FIXTURE_VERSION: u32 = 2;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/artifact-format-2")
}

#[test]
fn the_format_2_fixture_loads_or_is_refused_naming_its_version() {
    let dir = fixture();
    let manifest = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
    assert!(
        manifest.contains(&format!("\"format_version\": {FIXTURE_VERSION}")),
        "the fixture is not the format it claims to be"
    );
    match load(&dir) {
        Ok(engine) => {
            assert_eq!(
                FORMAT_VERSION, FIXTURE_VERSION,
                "a build of format {FORMAT_VERSION} loaded a format {FIXTURE_VERSION} artifact: \
                 if it reads old formats on purpose, check the answers below instead"
            );
            // The figures of the fit that wrote it (its manifest's data summary).
            assert_eq!(engine.customers().len(), 40);
            assert_eq!(engine.items().len(), 30);
        }
        Err(err) => {
            assert_ne!(
                FORMAT_VERSION, FIXTURE_VERSION,
                "this build reads format {FORMAT_VERSION}, yet refused the fixture: {err}"
            );
            assert!(
                matches!(
                    err,
                    ArtifactError::IncompatibleVersion {
                        found: FIXTURE_VERSION,
                        ..
                    }
                ),
                "refused for another reason than its version: {err}"
            );
            let api = ApiError::from(err);
            assert_eq!(api.code(), Code::ModelIncompatible);
            assert!(
                api.message()
                    .contains(&format!("format version {FIXTURE_VERSION}")),
                "{}",
                api.message()
            );
        }
    }
}
