//! The versioned artifact: a directory holding a trained [`Engine`].
//!
//! ```text
//! model/
//!   manifest.json        format version, model version, created time, data summary,
//!                        config, metrics, and the size + CRC-32 of every other file
//!   customers.json       customer ids in index order
//!   items.json           item ids with catalog metadata, in index order
//!   history.csr          customer x item purchase history (binary CSR, mapped)
//!   als_users.f32        ALS customer factors (binary dense matrix)
//!   als_items.f32        ALS item factors
//!   copurchase.csr       item x item co-purchase neighbours
//!   popularity.json      the fallback list
//!   similar.hnsw.graph   HNSW index over the item factors (hnsw_rs dump), only
//!   similar.hnsw.data    for catalogs of `[hnsw] min_items` items or more; a
//!   similar.hnsw.json    smaller one is searched exactly over als_items.f32
//!   customer_models.json BG/NBD and Gamma-Gamma fits, KPIs, stage and segment counts
//!   customer_profiles.bin  one fixed-size binary record per customer (RFM,
//!                        stage, P(alive), CLV, ...; see customer::profiles), mapped
//!   customer_orders.bin  every customer's orders: time, lines, units, value
//!                        (CSR offsets and one column a field; see
//!                        customer::orders), mapped
//!   replenishment.bin    item cycles and per (customer, item) replenishment
//!                        state (the per-customer arrays mapped)
//!   for_you.csr          precomputed repeat-aware "for you" scores (optional, mapped)
//!   new_items.csr        precomputed heads of the ALS new-item lists (optional, mapped)
//!   similar_lists.csr    every item's similar-items list (optional: catalogs searched
//!                        exactly), mapped
//! ```
//!
//! # Implementation notes
//! [`save`] writes into a hidden staging directory beside the target, fsyncs
//! every file, writes `manifest.json` last and renames the directory into
//! place, so a reader sees either the old artifact or the new one, whole.
//! [`load`] refuses an artifact whose format version it does not know, whose
//! manifest is missing, or any of whose files fails its size or checksum.
//!
//! The files marked *mapped* hold the per-customer data, most of an
//! artifact's size at scale. [`load`] does not read them into memory: it
//! checks each file's size and CRC-32 by streaming it through a small buffer,
//! maps it read-only ([`encore_data::mapped`]), validates its structure once
//! (lengths in the header against the file's, row pointers, indices, record
//! fields), and the engine then reads them in place: a loaded model costs
//! the page cache, shared with every process that maps the same files, and
//! little heap. The smaller files (ids, item data, factors, population
//! models) are read and decoded as before.

pub(crate) mod io;
pub mod store;

use crate::ann::{ExactIndex, HnswIndex, SimilarIndex};
use crate::cf::als::Als;
use crate::cf::item_knn::CoPurchase;
use crate::cf::popularity::Popularity;
use crate::customer::book::profiles::{self, ProfileTable};
use crate::customer::book::{CustomerBook, CustomerModels};
use crate::customer::orders::OrderTable;
use crate::customer::replenishment::Replenishment;
use crate::engine::{Engine, EngineParts, ItemMeta};
use crate::manifest::{FORMAT_VERSION, FileEntry, Manifest};
use encore_data::mapped::Mapping;
use encore_data::{Csr, IdMap};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const MANIFEST: &str = "manifest.json";
const PROFILES: &str = "customer_profiles.bin";
const ORDERS: &str = "customer_orders.bin";
const SIMILAR_LISTS: &str = "similar_lists.csr";
const HNSW_BASENAME: &str = "similar";

/// Why an artifact could not be written or loaded.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("{path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{path}: not an Encore model directory (no manifest.json)")]
    NotAnArtifact { path: PathBuf },
    #[error(
        "{path}: artifact format version {found} is not supported (this build reads version {expected}); retrain with this version of encore-train"
    )]
    IncompatibleVersion {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    #[error("{path}: damaged artifact: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{path}: cannot write a model there: {reason}")]
    InvalidTarget { path: PathBuf, reason: String },
}

impl ArtifactError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        ArtifactError::Io {
            path: path.to_path_buf(),
            cause: source,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct ItemRecord {
    id: String,
    #[serde(flatten)]
    meta: ItemMeta,
}

/// Writes `engine` to `target` atomically (see the module docs). `engine`'s
/// manifest is written with its `files` table filled in.
pub fn save(engine: &Engine, target: &Path) -> Result<Manifest, ArtifactError> {
    let stage = io::StagingDir::new(target)?;
    let dir = stage.path.clone();
    let mut out = io::FileTable::new(&dir);

    out.json("customers.json", engine.customers())?;
    let items: Vec<ItemRecord> = engine
        .items()
        .ids()
        .zip(engine.all_item_meta())
        .map(|(id, meta)| ItemRecord {
            id: id.to_string(),
            meta: meta.clone(),
        })
        .collect();
    out.json("items.json", &items)?;
    out.csr("history.csr", engine.history())?;
    out.write("als_users.f32", |w| {
        io::write_f32(w, engine.als().user_factors())
    })?;
    out.write("als_items.f32", |w| {
        io::write_f32(w, engine.als().item_factors())
    })?;
    out.csr("copurchase.csr", engine.copurchase().as_csr())?;
    out.json("popularity.json", &engine.popularity().ranked())?;
    let book = engine.customer_book();
    out.json("customer_models.json", book.models())?;
    out.write(PROFILES, |w| {
        profiles::write_profiles(w, book.len(), |f| book.visit_profiles(f))
    })?;
    out.write(ORDERS, |w| engine.customer_orders().write_to(w))?;
    out.write("replenishment.bin", |w| engine.replenishment().encode_to(w))?;
    for (name, lists) in [
        ("for_you.csr", engine.for_you_lists()),
        ("new_items.csr", engine.new_item_lists()),
        (SIMILAR_LISTS, engine.similar_lists()),
    ] {
        if let Some(lists) = lists {
            out.csr(name, lists)?;
        }
    }
    let mut files = out.files;
    // An exact index is rebuilt from the item factors at load: no files.
    if let Some(graph) = engine.similar_index().as_hnsw() {
        let dumped = graph
            .dump(&dir, HNSW_BASENAME)
            .map_err(|e| ArtifactError::Corrupt {
                path: dir.clone(),
                reason: format!("cannot dump the HNSW index: {e}"),
            })?;
        for path in dumped {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            files.insert(name, io::entry_of(&path)?);
        }
    }

    let mut manifest = engine.manifest().clone();
    manifest.format_version = FORMAT_VERSION;
    manifest.files = files;
    let bytes = serde_json::to_vec_pretty(&manifest).expect("manifest serialises");
    io::write_file(&dir, MANIFEST, &bytes)?;
    stage.commit()?;
    Ok(manifest)
}

/// The SHA-256 of `bytes`, as lower-case hex: how a store records a manifest.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The SHA-256 (hex) of the manifest of the artifact at `dir`: what a store
/// records in `CURRENT` and `HISTORY` when it makes the version current.
pub fn manifest_sha256(dir: &Path) -> Result<String, ArtifactError> {
    let path = dir.join(MANIFEST);
    let bytes = std::fs::read(&path).map_err(|e| ArtifactError::io(&path, e))?;
    Ok(sha256_hex(&bytes))
}

/// Reads only the manifest of the artifact at `dir`, checking its format version.
pub fn read_manifest(dir: &Path) -> Result<Manifest, ArtifactError> {
    read_manifest_expecting(dir, None)
}

/// [`read_manifest`], and with `sha256 = Some(hex)` the manifest's bytes
/// must have that SHA-256 (what the store recorded when it made the version
/// current): a manifest changed since is refused, naming the file.
pub fn read_manifest_expecting(
    dir: &Path,
    sha256: Option<&str>,
) -> Result<Manifest, ArtifactError> {
    let path = dir.join(MANIFEST);
    let Some(bytes) = io::read_existing(&path)? else {
        return Err(ArtifactError::NotAnArtifact {
            path: dir.to_path_buf(),
        });
    };
    if let Some(expected) = sha256 {
        let found = sha256_hex(&bytes);
        if found != expected {
            return Err(ArtifactError::Corrupt {
                path,
                reason: format!(
                    "its SHA-256 is {found}, but the store recorded {expected} when this version \
                     was made current: the manifest changed since (edited or damaged); make the \
                     version current again (encore-train models promote) if the change is intended"
                ),
            });
        }
    }
    // Look at the version before the rest, so a future format gets the right message.
    #[derive(Deserialize)]
    struct Version {
        format_version: u32,
    }
    let version: Version = serde_json::from_slice(&bytes).map_err(|e| ArtifactError::Corrupt {
        path: path.clone(),
        reason: format!("manifest is not valid JSON: {e}"),
    })?;
    if version.format_version != FORMAT_VERSION {
        return Err(ArtifactError::IncompatibleVersion {
            path: dir.to_path_buf(),
            found: version.format_version,
            expected: FORMAT_VERSION,
        });
    }
    serde_json::from_slice(&bytes).map_err(|e| ArtifactError::Corrupt {
        path,
        reason: format!("manifest: {e}"),
    })
}

/// Loads and fully validates the artifact at `dir`.
pub fn load(dir: &Path) -> Result<Engine, ArtifactError> {
    load_expecting(dir, None)
}

/// [`load`], with the manifest checked against the SHA-256 a store
/// recorded for it ([`read_manifest_expecting`]).
pub fn load_expecting(dir: &Path, manifest_sha256: Option<&str>) -> Result<Engine, ArtifactError> {
    let manifest = read_manifest_expecting(dir, manifest_sha256)?;
    let entry = |name: &str| -> Result<&FileEntry, ArtifactError> {
        manifest
            .files
            .get(name)
            .ok_or_else(|| ArtifactError::Corrupt {
                path: dir.join(MANIFEST),
                reason: format!("the manifest lists no file {name}"),
            })
    };
    let file = |name: &str| -> Result<(PathBuf, Vec<u8>), ArtifactError> {
        Ok((dir.join(name), io::verify_file(dir, name, entry(name)?)?))
    };
    let parse_json = |name: &str| -> Result<serde_json::Value, ArtifactError> {
        let (path, bytes) = file(name)?;
        serde_json::from_slice(&bytes).map_err(|e| ArtifactError::Corrupt {
            path,
            reason: e.to_string(),
        })
    };
    // Straight into the typed value: the profiles are the largest JSON file.
    fn parse_as<T: serde::de::DeserializeOwned>(
        (path, bytes): (PathBuf, Vec<u8>),
    ) -> Result<T, ArtifactError> {
        serde_json::from_slice(&bytes).map_err(|e| ArtifactError::Corrupt {
            path,
            reason: e.to_string(),
        })
    }
    fn typed<T: serde::de::DeserializeOwned>(
        v: serde_json::Value,
        path: PathBuf,
    ) -> Result<T, ArtifactError> {
        serde_json::from_value(v).map_err(|e| ArtifactError::Corrupt {
            path,
            reason: e.to_string(),
        })
    }

    let customers: IdMap = typed(parse_json("customers.json")?, dir.join("customers.json"))?;
    let records: Vec<ItemRecord> = typed(parse_json("items.json")?, dir.join("items.json"))?;
    let items = IdMap::from_ids(records.iter().map(|r| r.id.as_str()));
    if items.len() != records.len() {
        return Err(ArtifactError::Corrupt {
            path: dir.join("items.json"),
            reason: "duplicate item id".into(),
        });
    }
    let item_meta = records.into_iter().map(|r| r.meta).collect();
    // The per-customer files: checked by streaming, then mapped.
    let mapped = |name: &str| -> Result<(PathBuf, Arc<Mapping>, io::Streamed), ArtifactError> {
        let (map, streamed) = io::map_verified(dir, name, entry(name)?)?;
        Ok((dir.join(name), map, streamed))
    };
    let mapped_csr = |name: &str| -> Result<Csr, ArtifactError> {
        let (p, map, _) = mapped(name)?;
        io::map_csr(&map, &p)
    };
    let history = mapped_csr("history.csr")?;
    let (p, b) = file("als_users.f32")?;
    let users = io::decode_f32(&b, &p)?;
    let (p, b) = file("als_items.f32")?;
    let item_factors = io::decode_f32(&b, &p)?;
    let als =
        Als::from_factors(manifest.als.clone(), users, item_factors.clone()).map_err(|e| {
            ArtifactError::Corrupt {
                path: dir.join("als_items.f32"),
                reason: e.to_string(),
            }
        })?;
    let (p, b) = file("copurchase.csr")?;
    let copurchase = CoPurchase::from_csr(io::decode_csr(&b, &p)?);
    let ranked: Vec<(u32, f32)> =
        typed(parse_json("popularity.json")?, dir.join("popularity.json"))?;
    let popularity = Popularity::from_ranked(ranked);
    let customer_models: CustomerModels = parse_as(file("customer_models.json")?)?;
    let (p, map, _) = mapped(PROFILES)?;
    let profiles =
        ProfileTable::open(map).map_err(|reason| ArtifactError::Corrupt { path: p, reason })?;
    let customer_book = CustomerBook::from_stored(customer_models, profiles);
    let (p, map, _) = mapped(ORDERS)?;
    let orders =
        OrderTable::open(map).map_err(|reason| ArtifactError::Corrupt { path: p, reason })?;
    // Optional: models trained with `for_you.repeat_aware = false` have none.
    let for_you = if manifest.files.contains_key("for_you.csr") {
        Some(mapped_csr("for_you.csr")?)
    } else {
        None
    };
    // Optional: models trained with `for_you.new_items_top_n = 0`, or
    // before the lists existed, score the catalog for every request.
    let new_items = if manifest.files.contains_key("new_items.csr") {
        Some(mapped_csr("new_items.csr")?)
    } else {
        None
    };
    // Optional: kept for catalogs searched exactly (`Engine::with_similar_lists`);
    // without them each item's list is searched on its first request.
    let similar_lists = if manifest.files.contains_key(SIMILAR_LISTS) {
        Some(mapped_csr(SIMILAR_LISTS)?)
    } else {
        None
    };
    let (p, map, streamed) = mapped("replenishment.bin")?;
    let replenishment = Replenishment::check_trailing_crc(streamed.body_crc, streamed.tail)
        .and_then(|()| Replenishment::from_mapped(&map))
        .map_err(|e| ArtifactError::Corrupt {
            path: p,
            reason: e.to_string(),
        })?;
    // A model of a catalog below `[hnsw] min_items` has no graph files: its
    // index is the exact scan over the item factors.
    let graph_files = HnswIndex::file_names(HNSW_BASENAME);
    let similar = if manifest.files.contains_key(&graph_files[0]) {
        // The HNSW files are checked against the manifest before hnsw_rs reads them.
        for (name, entry) in &manifest.files {
            if name.starts_with(HNSW_BASENAME) {
                io::verify_file(dir, name, entry)?;
            }
        }
        SimilarIndex::Hnsw(
            HnswIndex::load(dir, HNSW_BASENAME, &item_factors).map_err(|e| {
                ArtifactError::Corrupt {
                    path: dir.join(&graph_files[0]),
                    reason: e.to_string(),
                }
            })?,
        )
    } else {
        SimilarIndex::Exact(ExactIndex::new(&item_factors))
    };
    Engine::from_parts(EngineParts {
        manifest,
        customers,
        items,
        item_meta,
        history,
        als,
        copurchase,
        popularity,
        similar,
        customer_book,
        orders,
        replenishment,
        for_you,
        new_items,
        similar_lists,
    })
    .map_err(|e| ArtifactError::Corrupt {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ListFilter;
    use crate::manifest::DataSummary;
    use crate::pipeline::{EngineConfig, train_engine};
    use encore_data::synth::{SynthParams, generate};

    fn engine() -> Engine {
        engine_with(|_| {})
    }

    fn engine_with(change: impl FnOnce(&mut EngineConfig)) -> Engine {
        let log = generate(&SynthParams {
            customers: 300,
            items: 120,
            purchases: 6_000,
            categories: 6,
            ..SynthParams::default()
        });
        let meta = vec![ItemMeta::default(); log.items.len()];
        let mut config = EngineConfig::default();
        config.als.factors = 8;
        config.als.iterations = 3;
        config.for_you.new_items_top_n = 10;
        change(&mut config);
        train_engine(&log, meta, &config, DataSummary::default(), &mut |_| {}).unwrap()
    }

    /// Below `[hnsw] min_items` the similar-items index is the exact scan and
    /// the artifact holds no graph; from it, the graph is saved and loaded.
    /// Either way the loaded model answers as the fitted one.
    #[test]
    fn the_similar_index_follows_the_catalog_size_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let graph = HnswIndex::file_names(HNSW_BASENAME);
        for (min_items, kind) in [(121, "exact"), (120, "hnsw")] {
            let fitted = engine_with(|c| c.hnsw.min_items = min_items);
            assert_eq!(fitted.items().len(), 120);
            assert_eq!(fitted.similar_index().kind(), kind);
            let at = dir.path().join(kind);
            let manifest = save(&fitted, &at).unwrap();
            for name in &graph {
                assert_eq!(manifest.files.contains_key(name), kind == "hnsw", "{name}");
                assert_eq!(at.join(name).exists(), kind == "hnsw", "{name}");
            }
            // The exact scan's lists are searched at the fit and kept.
            assert_eq!(manifest.files.contains_key(SIMILAR_LISTS), kind == "exact");
            let loaded = load(&at).unwrap();
            assert_eq!(loaded.similar_index().kind(), kind);
            assert_eq!(loaded.similar_lists().is_some(), kind == "exact");
            let none = ListFilter::default();
            for item in 0..120 {
                for k in [10, 60] {
                    assert_eq!(
                        loaded.similar(item, k, &none),
                        fitted.similar(item, k, &none)
                    );
                }
            }
        }
    }

    /// A loaded model reads its per-customer data in place and answers as
    /// the fitted one: profiles, lists, history and buy-again lists.
    #[test]
    fn a_loaded_model_reads_per_customer_data_in_place_and_equals_the_fit() {
        let fitted = engine();
        let dir = tempfile::tempdir().unwrap();
        let at = dir.path().join("m");
        save(&fitted, &at).unwrap();
        let loaded = load(&at).unwrap();
        assert!(loaded.history().indices().len() > 1_000);
        assert_eq!(loaded.history(), fitted.history());
        assert_eq!(loaded.for_you_lists(), fitted.for_you_lists());
        assert!(fitted.for_you_lists().is_some() && fitted.new_item_lists().is_some());
        assert_eq!(loaded.new_item_lists(), fitted.new_item_lists());
        assert_eq!(loaded.customer_book(), fitted.customer_book());
        // Every customer's orders, read in place: as many as the profile says.
        assert!(loaded.customer_orders().is_mapped());
        assert_eq!(loaded.customer_orders(), fitted.customer_orders());
        assert!(fitted.customer_orders().total() > 1_000);
        for c in 0..fitted.customers().len() as u32 {
            let orders = loaded.customer_book().profile(c).map_or(0, |p| p.orders);
            assert_eq!(loaded.customer_orders().count(c), orders as usize);
        }
        let profiled = loaded.customer_book().profiles().flatten().count();
        assert!(profiled > 250, "{profiled}");
        let (a, b) = (loaded.replenishment(), fitted.replenishment());
        assert_eq!(a.encode(), b.encode());
        for c in 0..fitted.customers().len() as u32 {
            assert_eq!(a.scored(c), b.scored(c));
            assert_eq!(a.due(c, 5, |_| false), b.due(c, 5, |_| false));
        }
        // Saving the loaded model writes the same files.
        let again = dir.path().join("again");
        let m2 = save(&loaded, &again).unwrap();
        let m1 = read_manifest(&at).unwrap();
        assert_eq!(m1.files, m2.files);
    }

    /// A per-customer file whose checksum matches its manifest entry but
    /// whose contents are inconsistent is refused, naming the file, and
    /// never panics.
    #[test]
    fn malformed_mapped_files_are_corrupt_and_named() {
        let fitted = engine();
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good");
        save(&fitted, &good).unwrap();
        let n_customers = fitted.customers().len();
        let rows_at = 8;
        let indices_at = 32 + (n_customers + 1) * 8;
        let u64le = |v: u64| v.to_le_bytes().to_vec();
        let u32le = |v: u32| v.to_le_bytes().to_vec();
        // (file, byte offset, new bytes); None: truncate by 8 bytes.
        let profiles_table = u64::from_le_bytes(
            std::fs::read(good.join(PROFILES)).unwrap()[24..32]
                .try_into()
                .unwrap(),
        ) as usize;
        let first_record = 32 + profiles_table;
        let repl_pairs_at = {
            let r = fitted.replenishment();
            120 + r.n_items() * 44 + (n_customers + 1) * 4
        };
        // customer_orders.bin: header, offsets, then times, values, units, lines.
        let n_orders = fitted.customer_orders().total();
        let orders_times = 32 + (n_customers + 1) * 8;
        let orders_values = orders_times + n_orders * 8;
        let orders_units = orders_values + n_orders * 4;
        let orders_lines = orders_units + n_orders * 4;
        // The first order of a customer with two: made later than the second.
        let table = fitted.customer_orders();
        let repeat = (0..n_customers as u32)
            .find(|&c| table.count(c) >= 2)
            .unwrap();
        let first_of_repeat: usize = (0..repeat).map(|c| table.count(c)).sum();
        let i64le = |v: i64| v.to_le_bytes().to_vec();
        let f32le = |v: f32| v.to_le_bytes().to_vec();
        /// Bytes written at an offset, or `None`: the file cut by 8 bytes.
        type Damage = Option<(usize, Vec<u8>)>;
        let cases: Vec<(&str, Damage)> = vec![
            ("history.csr", None),
            ("history.csr", Some((rows_at, u64le(1 << 40)))),
            ("history.csr", Some((rows_at, u64le(u64::MAX)))),
            ("history.csr", Some((32 + 8, u64le(u64::MAX)))),
            ("history.csr", Some((32 + 8 * 3, u64le(0)))),
            ("history.csr", Some((indices_at, u32le(1_000_000)))),
            ("for_you.csr", Some((32 + 8, u64le(1 << 33)))),
            ("new_items.csr", Some((indices_at, u32le(u32::MAX)))),
            (PROFILES, None),
            (PROFILES, Some((8, u64le(u64::MAX / 2)))),
            (PROFILES, Some((16, u64le(64)))),
            (PROFILES, Some((32, b"{{{{{{{{".to_vec()))),
            (PROFILES, Some((first_record + 15, vec![9]))),
            (PROFILES, Some((first_record + 16, vec![0xfe, 0xff]))),
            (PROFILES, Some((first_record, u32le(1 << 20 | 1)))),
            (ORDERS, None),
            (ORDERS, Some((0, b"ENCCSR\0\x01".to_vec()))),
            (ORDERS, Some((16, u64le(u64::MAX / 4)))),
            (ORDERS, Some((24, u64le(1)))),
            (ORDERS, Some((32, u64le(1)))),
            (ORDERS, Some((32 + 8, u64le(u64::MAX)))),
            (
                ORDERS,
                Some((orders_times + first_of_repeat * 8, i64le(i64::MAX))),
            ),
            (ORDERS, Some((orders_values, f32le(-1.0)))),
            (ORDERS, Some((orders_units, f32le(f32::INFINITY)))),
            (ORDERS, Some((orders_lines, u32le(0)))),
            ("replenishment.bin", Some((repl_pairs_at, u32le(1_000_000)))),
            (
                "replenishment.bin",
                Some((8 + 4 + 1 + 80 + 8, u32le(u32::MAX))),
            ),
            ("replenishment.bin", None),
        ];
        for (at, (name, change)) in cases.into_iter().enumerate() {
            let m = dir.path().join(format!("bad{at}"));
            save(&fitted, &m).unwrap();
            let path = m.join(name);
            let mut bytes = std::fs::read(&path).unwrap();
            match &change {
                None => bytes.truncate(bytes.len() - 8),
                Some((offset, new)) => bytes[*offset..*offset + new.len()].copy_from_slice(new),
            }
            if name == "replenishment.bin" && change.is_some() {
                // Its own trailing checksum too: the structure is what is tested.
                let body = bytes.len() - 4;
                let crc = crc32fast::hash(&bytes[..body]);
                bytes[body..].copy_from_slice(&crc.to_le_bytes());
            }
            std::fs::write(&path, &bytes).unwrap();
            // The manifest agrees with the damaged file: only its contents are wrong.
            let manifest_path = m.join(MANIFEST);
            let mut manifest: Manifest =
                serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
            let entry = manifest.files.get_mut(name).unwrap();
            entry.bytes = bytes.len() as u64;
            entry.crc32 = crc32fast::hash(&bytes);
            std::fs::write(&manifest_path, serde_json::to_vec(&manifest).unwrap()).unwrap();
            let err = load(&m).err().expect("malformed file refused");
            assert!(
                matches!(err, ArtifactError::Corrupt { .. }),
                "case {at}: {err}"
            );
            assert!(err.to_string().contains(name), "case {at}: {err}");
        }
        // The untouched copy still loads.
        load(&good).unwrap();
    }
}
