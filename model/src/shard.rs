//! A fit split across processes or machines: the shared part, one part per
//! shard of customers, and the assembly of one ordinary artifact.
//!
//! ```text
//! SHARED/                       train_shared, written by save_shared
//!   model/                      an artifact without the per-customer lists
//!   shared.json                 written last: the part's id, the list plan,
//!                               the size and CRC-32 of model/manifest.json
//! PART/                         customer_lists of one shard, written by save_part
//!   for_you.csr                 a row per customer of the shard (index order)
//!   new_items.csr
//!   part.json                   written last: shared id, shard, shard count,
//!                               customers, the size and CRC-32 of each file
//! ```
//!
//! A customer belongs to shard `crc32(customer id) mod N` ([`shard_of`]:
//! CRC-32 of the id's UTF-8 bytes, the IEEE polynomial of zlib and of
//! Python's `zlib.crc32`), so any process can tell which shard holds a
//! customer without the others. [`assemble`] checks every part before it
//! reads one row: all `N` shards present once, each built from this shared
//! part for `N` shards, each file whole; it refuses otherwise, naming the
//! shard and its directory, and nothing is written.
//!
//! # Implementation notes
//! The per-customer lists of a customer depend on the shared part and the
//! whole history only ([`crate::pipeline::customer_lists`]), never on which
//! other customers a shard holds, so the assembled lists are the lists of a
//! fit in one process, bit for bit; the tests check it for several shard
//! counts.

use crate::artifact::io::{self, StagingDir};
use crate::artifact::{self, ArtifactError};
use crate::engine::Engine;
use crate::manifest::FileEntry;
use crate::pipeline::{CustomerLists, EngineConfig, ListPlan, SharedFit};
use encore_data::{Csr, CsrBuilder, IdMap};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The marker file of a shared part, written last.
pub const SHARED_FILE: &str = "shared.json";
/// The marker file of a shard's part, written last.
pub const PART_FILE: &str = "part.json";
/// The artifact inside a shared part.
const MODEL_DIR: &str = "model";
/// The layout of `shared.json` and `part.json` this build writes and reads.
const SHARD_FORMAT: u32 = 1;
const FOR_YOU: &str = "for_you.csr";
const NEW_ITEMS: &str = "new_items.csr";

/// Why a sharded fit's part could not be written, read or assembled.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error("{0}")]
    Artifact(ArtifactError),
    #[error(
        "{path}: not a shared part (no {SHARED_FILE}); write one with `encore-train fit --shared-only`"
    )]
    NotShared { path: PathBuf },
    #[error("{path}: damaged shared part: {reason}")]
    SharedDamaged { path: PathBuf, reason: String },
    #[error("shard {shard} of {of}: {reason}")]
    InvalidShard { shard: u32, of: u32, reason: String },
    #[error("shard part {dir}: missing (no {PART_FILE}): the shard step did not finish there")]
    PartMissing { dir: PathBuf },
    #[error("shard part {dir}: damaged {PART_FILE}: {reason}")]
    PartUnreadable { dir: PathBuf, reason: String },
    #[error("shard {shard} ({dir}): damaged: {reason}")]
    PartDamaged {
        shard: u32,
        dir: PathBuf,
        reason: String,
    },
    #[error(
        "shard {shard} ({dir}): built from another shared part ({found}), not this one ({expected}); run its shard step again"
    )]
    OtherShared {
        shard: u32,
        dir: PathBuf,
        expected: String,
        found: String,
    },
    #[error("shard {shard} ({dir}): one of {of} shards, but {expected} shards are assembled")]
    ShardCount {
        shard: u32,
        dir: PathBuf,
        of: u32,
        expected: u32,
    },
    #[error("shard {shard} of {of} is given twice: {first} and {second}")]
    Duplicate {
        shard: u32,
        of: u32,
        first: PathBuf,
        second: PathBuf,
    },
    #[error(
        "shard {shard} of {of} is missing: none of the {given} part directories given holds it"
    )]
    Missing { shard: u32, of: u32, given: usize },
    #[error("no shard part given")]
    NoParts,
}

crate::error_from!(ShardError { Artifact(ArtifactError) });

/// The shard of the customer `id` among `of` shards: CRC-32 (IEEE) of the
/// id's UTF-8 bytes, modulo `of`.
///
/// # Panics
/// If `of` is 0.
pub fn shard_of(id: &str, of: u32) -> u32 {
    crc32fast::hash(id.as_bytes()) % of
}

/// The indices of the customers of `customers` in shard `shard` of `of`, ascending.
pub fn shard_customers(customers: &IdMap, shard: u32, of: u32) -> Vec<u32> {
    customers
        .ids()
        .enumerate()
        .filter(|(_, id)| shard_of(id, of) == shard)
        .map(|(c, _)| c as u32)
        .collect()
}

/// Checks a shard index and count.
pub fn check_shard(shard: u32, of: u32) -> Result<(), ShardError> {
    let bad = |reason: &str| {
        Err(ShardError::InvalidShard {
            shard,
            of,
            reason: reason.into(),
        })
    };
    if of == 0 {
        return bad("the shard count must be at least 1");
    }
    if shard >= of {
        return bad("shards are numbered from 0 to the count less one");
    }
    Ok(())
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SharedRecord {
    format: u32,
    id: String,
    plan: ListPlan,
    /// `model/manifest.json`, which holds the size and CRC-32 of every other file.
    model_manifest: FileEntry,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PartRecord {
    format: u32,
    /// The id of the shared part the lists were made from.
    shared: String,
    shard: u32,
    of: u32,
    customers: usize,
    files: BTreeMap<String, FileEntry>,
}

/// A shared part read back: what every shard and the assembly start from.
pub struct SharedPart {
    /// The engine without per-customer lists.
    pub engine: Engine,
    pub plan: ListPlan,
    /// The fit's configuration, as recorded in the manifest.
    pub config: EngineConfig,
    /// Names this shared part; every shard part records it.
    pub id: String,
    pub dir: PathBuf,
}

/// Writes the shared part of a fit to `target` (replaced atomically if it
/// holds one already) and returns its id.
pub fn save_shared(fit: &SharedFit, target: &Path) -> Result<String, ShardError> {
    let stage = StagingDir::marked(target, SHARED_FILE, "a shared part of a sharded fit")?;
    let model = stage.path.join(MODEL_DIR);
    artifact::save(&fit.engine, &model)?;
    let model_manifest = io::entry_of(&model.join("manifest.json"))?;
    let id = format!(
        "{}-{:08x}",
        fit.engine.manifest().model_version,
        model_manifest.crc32
    );
    let record = SharedRecord {
        format: SHARD_FORMAT,
        id: id.clone(),
        plan: fit.plan.clone(),
        model_manifest,
    };
    let bytes = serde_json::to_vec_pretty(&record).expect("shared record serialises");
    io::write_file(&stage.path, SHARED_FILE, &bytes)?;
    stage.commit()?;
    Ok(id)
}

/// Reads the shared part at `dir`, checking its model whole.
pub fn load_shared(dir: &Path) -> Result<SharedPart, ShardError> {
    let path = dir.join(SHARED_FILE);
    let Some(bytes) = io::read_existing(&path)? else {
        return Err(ShardError::NotShared {
            path: dir.to_path_buf(),
        });
    };
    let damaged = |path: &Path, reason: String| ShardError::SharedDamaged {
        path: path.to_path_buf(),
        reason,
    };
    let record: SharedRecord =
        serde_json::from_slice(&bytes).map_err(|e| damaged(&path, e.to_string()))?;
    if record.format != SHARD_FORMAT {
        return Err(damaged(
            &path,
            format!(
                "format {} is not the format {SHARD_FORMAT} of this build; run fit --shared-only again",
                record.format
            ),
        ));
    }
    let model = dir.join(MODEL_DIR);
    io::verify_file(&model, "manifest.json", &record.model_manifest)?;
    let engine = artifact::load(&model)?;
    let config: EngineConfig = serde_json::from_value(engine.manifest().config.clone())
        .map_err(|e| damaged(&model.join("manifest.json"), format!("config: {e}")))?;
    Ok(SharedPart {
        engine,
        plan: record.plan,
        config,
        id: record.id,
        dir: dir.to_path_buf(),
    })
}

/// Writes the lists of shard `shard` of `of` (made from `shared` for
/// [`shard_customers`] of that shard) to `target`, atomically.
pub fn save_part(
    target: &Path,
    shared: &SharedPart,
    shard: u32,
    of: u32,
    lists: &CustomerLists,
) -> Result<(), ShardError> {
    check_shard(shard, of)?;
    let stage = StagingDir::marked(target, PART_FILE, "a shard part of a sharded fit")?;
    let mut out = io::FileTable::new(&stage.path);
    let mut customers = None;
    for (name, m) in [(FOR_YOU, &lists.for_you), (NEW_ITEMS, &lists.new_items)] {
        if let Some(m) = m {
            customers = Some(m.n_rows());
            out.csr(name, m)?;
        }
    }
    let record = PartRecord {
        format: SHARD_FORMAT,
        shared: shared.id.clone(),
        shard,
        of,
        customers: customers
            .unwrap_or_else(|| shard_customers(shared.engine.customers(), shard, of).len()),
        files: out.files,
    };
    let bytes = serde_json::to_vec_pretty(&record).expect("part record serialises");
    io::write_file(&stage.path, PART_FILE, &bytes)?;
    stage.commit()?;
    Ok(())
}

/// A part's record, read and checked against `shared`.
fn read_part(dir: &Path, shared: &SharedPart) -> Result<PartRecord, ShardError> {
    let path = dir.join(PART_FILE);
    let Some(bytes) = io::read_existing(&path)? else {
        return Err(ShardError::PartMissing {
            dir: dir.to_path_buf(),
        });
    };
    let record: PartRecord =
        serde_json::from_slice(&bytes).map_err(|e| ShardError::PartUnreadable {
            dir: dir.to_path_buf(),
            reason: e.to_string(),
        })?;
    if record.format != SHARD_FORMAT || record.of == 0 || record.shard >= record.of {
        return Err(ShardError::PartUnreadable {
            dir: dir.to_path_buf(),
            reason: format!(
                "format {}, shard {} of {}: not a part this build writes",
                record.format, record.shard, record.of
            ),
        });
    }
    if record.shared != shared.id {
        return Err(ShardError::OtherShared {
            shard: record.shard,
            dir: dir.to_path_buf(),
            expected: shared.id.clone(),
            found: record.shared,
        });
    }
    Ok(record)
}

/// One shard's lists, checked and decoded.
struct Part {
    for_you: Option<Csr>,
    new_items: Option<Csr>,
}

/// Reads the lists of a part whose record is checked, verifying each file
/// and its shape against the shard's customers.
fn read_lists(
    dir: &Path,
    record: &PartRecord,
    shared: &SharedPart,
    customers: usize,
) -> Result<Part, ShardError> {
    let damaged = |reason: String| ShardError::PartDamaged {
        shard: record.shard,
        dir: dir.to_path_buf(),
        reason,
    };
    let wants_for_you = !matches!(shared.plan, ListPlan::NewItemsOnly);
    let wants_new = shared.config.for_you.new_items_top_n > 0;
    let n_items = shared.engine.items().len();
    let read = |name: &str, wanted: bool| -> Result<Option<Csr>, ShardError> {
        let entry = match (record.files.get(name), wanted) {
            (None, false) => return Ok(None),
            (Some(e), true) => e,
            (None, true) => {
                return Err(damaged(format!(
                    "{PART_FILE} lists no {name}, which the shared part's lists include"
                )));
            }
            (Some(_), false) => {
                return Err(damaged(format!(
                    "{PART_FILE} lists {name}, which the shared part's lists do not include"
                )));
            }
        };
        let bytes = io::verify_file(dir, name, entry).map_err(|e| damaged(e.to_string()))?;
        let m = io::decode_csr(&bytes, &dir.join(name)).map_err(|e| damaged(e.to_string()))?;
        if m.n_rows() != customers || m.n_cols() != n_items {
            return Err(damaged(format!(
                "{name} is {} x {}, the shard has {customers} customers and the shared part {n_items} items",
                m.n_rows(),
                m.n_cols()
            )));
        }
        Ok(Some(m))
    };
    Ok(Part {
        for_you: read(FOR_YOU, wants_for_you)?,
        new_items: read(NEW_ITEMS, wants_new)?,
    })
}

/// The shared part's engine with the lists of the shard parts in `dirs`
/// (in any order) put together: the engine a fit in one process gives.
///
/// Every part is checked before any list is read (see the module docs);
/// the first problem is returned, naming its shard and directory.
pub fn assemble(shared: SharedPart, dirs: &[PathBuf]) -> Result<Engine, ShardError> {
    if dirs.is_empty() {
        return Err(ShardError::NoParts);
    }
    let records = dirs
        .iter()
        .map(|dir| read_part(dir, &shared))
        .collect::<Result<Vec<_>, _>>()?;
    let of = records[0].of;
    let mut by_shard: Vec<Option<usize>> = vec![None; of as usize];
    for (at, r) in records.iter().enumerate() {
        if r.of != of {
            return Err(ShardError::ShardCount {
                shard: r.shard,
                dir: dirs[at].clone(),
                of: r.of,
                expected: of,
            });
        }
        if let Some(before) = by_shard[r.shard as usize] {
            return Err(ShardError::Duplicate {
                shard: r.shard,
                of,
                first: dirs[before].clone(),
                second: dirs[at].clone(),
            });
        }
        by_shard[r.shard as usize] = Some(at);
    }
    if let Some(shard) = by_shard.iter().position(Option::is_none) {
        return Err(ShardError::Missing {
            shard: shard as u32,
            of,
            given: dirs.len(),
        });
    }
    // Which shard each customer is in, and the shards' sizes.
    let customers = shared.engine.customers();
    let home: Vec<u32> = customers.ids().map(|id| shard_of(id, of)).collect();
    let mut sizes = vec![0usize; of as usize];
    for &s in &home {
        sizes[s as usize] += 1;
    }
    let mut parts = Vec::with_capacity(of as usize);
    for (shard, at) in by_shard.iter().enumerate() {
        let at = at.expect("every shard is present");
        let record = &records[at];
        if record.customers != sizes[shard] {
            return Err(ShardError::PartDamaged {
                shard: shard as u32,
                dir: dirs[at].clone(),
                reason: format!(
                    "it holds {} customers, the shared part has {} in this shard",
                    record.customers, sizes[shard]
                ),
            });
        }
        parts.push(read_lists(&dirs[at], record, &shared, sizes[shard])?);
    }
    let n_items = shared.engine.items().len();
    let merge = |pick: &dyn Fn(&Part) -> Option<&Csr>| -> Option<Csr> {
        if parts.iter().any(|p| pick(p).is_none()) {
            return None;
        }
        let mut next = vec![0usize; of as usize];
        let mut out = CsrBuilder::new(n_items);
        let mut row = Vec::new();
        for &s in &home {
            let m = pick(&parts[s as usize]).expect("checked above");
            let (items, scores) = m.row(next[s as usize]);
            next[s as usize] += 1;
            row.clear();
            row.extend(items.iter().copied().zip(scores.iter().copied()));
            out.push_row(&row);
        }
        Some(out.finish())
    };
    let for_you = merge(&|p| p.for_you.as_ref());
    let new_items = merge(&|p| p.new_items.as_ref());
    drop(parts);
    shared
        .engine
        .with_customer_lists(for_you, new_items)
        .map_err(|e| ShardError::SharedDamaged {
            path: shared.dir.clone(),
            reason: e.to_string(),
        })
}
