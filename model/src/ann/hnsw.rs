//! Approximate cosine search through an HNSW graph (`hnsw_rs` 0.3), and its files.
//!
//! # Distance
//! Vectors are L2-normalised before insertion and queries before search, and
//! the graph uses [`UnitCosine`], `1 - a·b` clamped to `[0, 2]`; the score
//! returned is `1 - distance`, the cosine similarity. The `anndists` distances
//! were not usable as they are:
//! * `DistDot` (the scalar version, which is what is compiled without the
//!   `simdeez_f`/`stdsimd` features) asserts `1 - a·b >= 0`, and the dot
//!   product of a unit vector with itself is often `1 + 1 ulp`: asking for the
//!   neighbours of an indexed item panics.
//! * `DistCosine` recomputes both norms at every evaluation (three sums instead
//!   of one) and calls a zero vector "identical" (distance 0) to everything, so
//!   an item without an embedding would top every list. With [`UnitCosine`] a
//!   zero vector is at distance 1 (similarity 0) from everything.
//!
//! `hnsw_rs` asserts that distances are never negative and panics on NaN, so
//! [`HnswIndex::build`] refuses vectors with non-finite components and the
//! distance clamps its result.
//!
//! # Determinism
//! `hnsw_rs` has no seed parameter: node levels come from a generator seeded
//! with a constant. Serial insertion is therefore fully deterministic, while
//! parallel insertion is not (thread interleaving decides which node draws which
//! level and in which order links are made); recall is the same either way.
//! [`HnswParams::deterministic`] selects serial insertion, which gives the same
//! graph, byte for byte, for the same vectors, on one core. Searching a given
//! graph is deterministic.
//!
//! # Concurrency
//! `Hnsw::search` takes `&self` and only takes read locks (`parking_lot`) on the
//! graph, and nothing is inserted after [`HnswIndex::build`] returns, so any
//! number of server threads may search one index at once.
//!
//! # Files
//! [`HnswIndex::dump`] writes `<basename>.hnsw.graph` and `<basename>.hnsw.data`
//! (the `hnsw_rs` format) and `<basename>.hnsw.json`, a small sidecar with the
//! parameters (including `ef_search`, which `hnsw_rs` does not store), the
//! counts and the distance name. The `hnsw_rs` format is native-endian with
//! native `usize` fields: an index is only readable on the same kind of machine
//! (in practice 64-bit little-endian); elsewhere the checks below reject it.
//! A reloaded graph dumps to the same bytes except the level scale, which
//! `hnsw_rs` rescales on reload; it only matters for later insertions, and
//! there are none.
//!
//! # Loading damaged files
//! The `hnsw_rs` loader trusts its input. On damaged files it may panic
//! (`unwrap`, `assert`, out-of-bounds indexing), call `std::process::exit(1)`
//! (a data record it cannot read), abort the process on a huge allocation
//! (counts are read from the file and used as capacities) or read past a
//! buffer (a data record shorter than the dimension is reinterpreted with
//! `slice::from_raw_parts`). `catch_unwind` only covers the first case, so
//! [`HnswIndex::load`] first re-reads both files completely with a
//! bounds-checked parser and checks every invariant the loader relies on
//! (magics, counts, point ids, neighbour references, entry point, record
//! lengths, no trailing bytes), and that the stored vectors are bit-identical
//! to the normalised vectors it is given (the artifact's item factors). Only
//! then are the files handed to `hnsw_rs`, inside `catch_unwind` as a second
//! line of defence (a panic there becomes [`AnnError::Panicked`]; the default
//! panic hook still prints it). Files replaced between the check and the load
//! are not covered; artifact directories are never modified once published.
//!
//! # Lifetimes
//! `HnswIo::load_hnsw*` return `Hnsw<'b, ..>` with the `HnswIo` borrowed for
//! `'b`, because with memory-mapped loading the points would borrow the
//! loader's map. This module never memory-maps: every loaded point owns a copy
//! of its vector and nothing in the graph points into the loader. The
//! signature still ties the graph to the loader, so, without `unsafe`, the
//! loader is leaked (`Box::leak`) to obtain an `Hnsw<'static, ..>` that can
//! live in an `Arc` and be dropped on a hot swap. The leaked value holds a
//! directory path, the basename and an `Arc<AtomicUsize>` (no file handle, no
//! data): about 150 bytes per load. Dropping an [`HnswIndex`] frees the whole
//! graph (`hnsw_rs` breaks its internal reference cycles in `Drop`).

use super::{AnnError, VectorSearch, first_non_finite_row, normalised, normalised_rows};
use crate::topk::rank_order;
use hnsw_rs::anndists::dist::distances::Distance;
use hnsw_rs::api::AnnT;
use hnsw_rs::hnsw::Hnsw;
use hnsw_rs::hnswio::HnswIo;
use ndarray::Array2;
use serde::{Deserialize, Serialize};
use std::any::{Any, type_name};
use std::fs::File;
use std::io::{BufReader, Read};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

/// Number of layers of every `hnsw_rs` graph (its `NB_LAYER_MAX`, which is not
/// public); `hnsw_rs` only dumps graphs created with exactly this many.
const LAYERS: u8 = 16;
// Magic numbers of the hnsw_rs 0.3 dump format (src/hnswio.rs).
const MAGIC_DESCRIPTION: u32 = 0x002a_6779;
const MAGIC_LAYER: u32 = 0x000a_676f;
const MAGIC_POINT: u32 = 0x000a_678f;
const MAGIC_DATA: u32 = 0xa67f_0000;
/// Bytes of one neighbour record in a full dump: id, layer, rank, distance.
const LINK_BYTES: u64 = (size_of::<usize>() + 1 + 4 + 4) as u64;
/// Version of the `.hnsw.json` sidecar.
const SIDECAR_FORMAT: u32 = 1;

/// Cosine distance between unit vectors: `1 - a·b`, clamped to `[0, 2]`.
///
/// Its type name is recorded in dumps and checked on load, so renaming or
/// moving it makes existing index files unreadable.
#[derive(Debug, Clone, Copy, Default)]
pub struct UnitCosine;

impl Distance<f32> for UnitCosine {
    #[inline]
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        let d = 1.0 - super::dot(a, b);
        if d.is_nan() { 2.0 } else { d.clamp(0.0, 2.0) }
    }
}

/// Settings of [`HnswIndex`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HnswParams {
    /// Links per node in the upper layers (twice as many in the bottom layer),
    /// `2..=255`.
    pub m: usize,
    /// Candidate list size while inserting; larger builds a better graph, slower.
    pub ef_construction: usize,
    /// Candidate list size while searching (at least `k` is used); larger
    /// gives better recall, slower.
    pub ef_search: usize,
    /// Insert serially so that the same vectors always give the same graph
    /// (see the module docs); otherwise insert on all cores.
    #[serde(default)]
    pub deterministic: bool,
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams {
            m: 16,
            ef_construction: 200,
            ef_search: 128,
            deterministic: false,
        }
    }
}

impl HnswParams {
    /// Checks the ranges `hnsw_rs` accepts (it exits the process for `m > 256`
    /// and stores `m` in a byte).
    pub fn check(&self) -> Result<(), AnnError> {
        let bad = |reason: String| Err(AnnError::InvalidParams { reason });
        if !(2..=255).contains(&self.m) {
            return bad(format!("m must be in 2..=255, got {}", self.m));
        }
        if self.ef_construction == 0 || self.ef_search == 0 {
            return bad("ef_construction and ef_search must be at least 1".into());
        }
        Ok(())
    }
}

/// The sidecar file of a dump.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sidecar {
    format: u32,
    distance: String,
    len: usize,
    dim: usize,
    params: HnswParams,
}

/// An HNSW graph over the normalised rows of a matrix.
pub struct HnswIndex {
    hnsw: Hnsw<'static, f32, UnitCosine>,
    params: HnswParams,
    len: usize,
    dim: usize,
    /// For an index read by [`HnswIndex::load`]: its graph and data files
    /// with their CRC-32 when read, which [`HnswIndex::dump`] copies.
    origin: Option<[(PathBuf, u32); 2]>,
}

impl std::fmt::Debug for HnswIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HnswIndex")
            .field("len", &self.len)
            .field("dim", &self.dim)
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl HnswIndex {
    /// Builds the graph over every row of `vectors` (row `i` gets id `i`).
    ///
    /// Refuses invalid parameters, an empty or zero-dimensional matrix and rows
    /// with a non-finite component. Zero rows are accepted.
    pub fn build(vectors: &Array2<f32>, params: &HnswParams) -> Result<Self, AnnError> {
        params.check()?;
        let (len, dim) = vectors.dim();
        check_shape(len, dim)?;
        if let Some(row) = first_non_finite_row(vectors) {
            return Err(AnnError::NonFinite { row });
        }
        let data = normalised_rows(vectors);
        let built = catch_unwind(AssertUnwindSafe(|| {
            let hnsw = Hnsw::<f32, UnitCosine>::new(
                params.m,
                len,
                usize::from(LAYERS),
                params.ef_construction,
                UnitCosine,
            );
            let rows: Vec<(&[f32], usize)> = data.chunks_exact(dim).zip(0..).collect();
            if params.deterministic {
                for &row in &rows {
                    hnsw.insert_slice(row);
                }
            } else {
                hnsw.parallel_insert_slice(&rows);
            }
            hnsw
        }));
        let mut hnsw = built.map_err(|p| AnnError::Panicked {
            during: "building the index",
            message: panic_message(p),
        })?;
        hnsw.set_searching_mode(true);
        Ok(HnswIndex {
            hnsw,
            params: params.clone(),
            len,
            dim,
            origin: None,
        })
    }

    /// The parameters the graph was built with (and the current `ef_search`).
    pub fn params(&self) -> &HnswParams {
        &self.params
    }

    /// Changes the search candidate list size (at least 1).
    pub fn set_ef_search(&mut self, ef_search: usize) {
        self.params.ef_search = ef_search.max(1);
    }

    /// The names of the files [`Self::dump`] writes for `basename`: graph,
    /// data and sidecar.
    pub fn file_names(basename: &str) -> [String; 3] {
        [
            format!("{basename}.hnsw.graph"),
            format!("{basename}.hnsw.data"),
            format!("{basename}.hnsw.json"),
        ]
    }

    /// Writes the index into the existing directory `dir` (see the module
    /// docs for the files), overwriting files of the same names, and returns
    /// the paths written. The files are not fsynced.
    ///
    /// The written files are read back and checked, so that a change of the
    /// `hnsw_rs` format is caught when the index is written, not when a
    /// server loads it.
    pub fn dump(&self, dir: &Path, basename: &str) -> Result<Vec<PathBuf>, AnnError> {
        check_basename(basename)?;
        let dump_error = |reason: String| AnnError::Dump {
            dir: dir.to_path_buf(),
            reason,
        };
        if !dir.is_dir() {
            return Err(dump_error("not a directory".into()));
        }
        let [graph, data, sidecar] = Self::file_names(basename).map(|n| dir.join(n));
        // hnsw_rs 0.3.5 writes the level generator's scale but reads the
        // number back as a factor of the default scale, so dumping a loaded
        // index would change that header field (searches are unaffected):
        // a loaded index is written back as the bytes it was read from, when
        // they are still there unchanged, so that loading and saving a model
        // (assembling a sharded fit, publishing into a store) keeps every file.
        if let Some(origin) = &self.origin {
            let copied = [&graph, &data]
                .into_iter()
                .zip(origin)
                .all(|(to, (from, crc))| {
                    from != to
                        && std::fs::copy(from, to).is_ok()
                        && std::fs::read(to).is_ok_and(|b| crc32fast::hash(&b) == *crc)
                });
            if copied {
                self.write_sidecar(&sidecar)?;
                check_dump(&graph, &data, None, self.len, self.dim, &self.params)?;
                return Ok(vec![graph, data, sidecar]);
            }
        }
        let used = catch_unwind(AssertUnwindSafe(|| self.hnsw.file_dump(dir, basename)))
            .map_err(|p| AnnError::Panicked {
                during: "dumping the index",
                message: panic_message(p),
            })?
            .map_err(|e| dump_error(format!("{e:#}")))?;
        if used != basename {
            return Err(dump_error(format!(
                "hnsw_rs wrote basename '{used}' instead of '{basename}'"
            )));
        }
        self.write_sidecar(&sidecar)?;
        check_dump(&graph, &data, None, self.len, self.dim, &self.params)?;
        Ok(vec![graph, data, sidecar])
    }

    /// Writes the JSON sidecar of a dump: the distance, the shape and the parameters.
    fn write_sidecar(&self, path: &Path) -> Result<(), AnnError> {
        let json = serde_json::to_vec_pretty(&Sidecar {
            format: SIDECAR_FORMAT,
            distance: type_name::<UnitCosine>().to_string(),
            len: self.len,
            dim: self.dim,
            params: self.params.clone(),
        })
        .expect("sidecar serialises");
        std::fs::write(path, json).map_err(|e| AnnError::io(path, e))
    }

    /// Loads an index written by [`Self::dump`] from `dir`, checking it against
    /// `vectors` (the matrix it was built from): same shape and bit-identical
    /// normalised rows. Damaged, truncated or foreign files give an error,
    /// never a panic or a process exit (see the module docs).
    pub fn load(dir: &Path, basename: &str, vectors: &Array2<f32>) -> Result<Self, AnnError> {
        check_basename(basename)?;
        let [graph, data, sidecar_path] = Self::file_names(basename).map(|n| dir.join(n));
        let bytes = std::fs::read(&sidecar_path).map_err(|e| AnnError::io(&sidecar_path, e))?;
        let sidecar: Sidecar = serde_json::from_slice(&bytes)
            .map_err(|e| AnnError::corrupt(&sidecar_path, e.to_string()))?;
        let (len, dim) = vectors.dim();
        let mismatch = |reason: String| Err(AnnError::corrupt(&sidecar_path, reason));
        if sidecar.format != SIDECAR_FORMAT {
            return mismatch(format!(
                "sidecar format {} is not supported",
                sidecar.format
            ));
        }
        if sidecar.distance != type_name::<UnitCosine>() {
            return mismatch(format!("built with distance '{}'", sidecar.distance));
        }
        if (sidecar.len, sidecar.dim) != (len, dim) {
            return mismatch(format!(
                "index of {} vectors of dimension {}, but {len} x {dim} given",
                sidecar.len, sidecar.dim
            ));
        }
        sidecar.params.check()?;
        check_shape(len, dim)?;
        if let Some(row) = first_non_finite_row(vectors) {
            return Err(AnnError::NonFinite { row });
        }
        let normalised = normalised_rows(vectors);
        check_dump(&graph, &data, Some(&normalised), len, dim, &sidecar.params)?;

        // Sound to leak: see "Lifetimes" in the module docs.
        let io: &'static HnswIo = Box::leak(Box::new(HnswIo::new(dir, basename)));
        let hnsw = catch_unwind(AssertUnwindSafe(|| {
            io.load_hnsw_with_dist::<f32, UnitCosine>(UnitCosine)
        }))
        .map_err(|p| AnnError::Panicked {
            during: "loading the index",
            message: panic_message(p),
        })?
        .map_err(|e| AnnError::corrupt(&graph, format!("{e:#}")))?;
        if hnsw.get_nb_point() != len || hnsw.get_point_indexation().get_data_dimension() != dim {
            return Err(AnnError::corrupt(
                &graph,
                "loaded graph has the wrong shape",
            ));
        }
        let mut hnsw = hnsw;
        hnsw.set_searching_mode(true);
        let crc = |path: &Path| std::fs::read(path).map(|b| crc32fast::hash(&b));
        let origin = match (crc(&graph), crc(&data)) {
            (Ok(g), Ok(d)) => Some([(graph, g), (data, d)]),
            _ => None,
        };
        Ok(HnswIndex {
            hnsw,
            params: sidecar.params,
            len,
            dim,
            origin,
        })
    }
}

impl VectorSearch for HnswIndex {
    fn search(&self, query: &[f32], k: usize) -> Vec<(u32, f32)> {
        if k == 0 || query.len() != self.dim {
            return Vec::new();
        }
        let Some(query) = normalised(query) else {
            return Vec::new();
        };
        let k = k.min(self.len);
        let ef = self.params.ef_search.max(k);
        let mut found: Vec<(u32, f32)> = self
            .hnsw
            .search(&query, k, ef)
            .into_iter()
            .map(|n| (n.d_id as u32, 1.0 - n.distance))
            .collect();
        found.sort_by(rank_order);
        found
    }

    fn len(&self) -> usize {
        self.len
    }

    fn dim(&self) -> usize {
        self.dim
    }
}

pub(super) fn check_shape(len: usize, dim: usize) -> Result<(), AnnError> {
    if len == 0 || dim == 0 {
        return Err(AnnError::Empty { rows: len, dim });
    }
    if u32::try_from(len).is_err() {
        return Err(AnnError::InvalidParams {
            reason: format!("{len} vectors do not fit u32 ids"),
        });
    }
    Ok(())
}

fn check_basename(basename: &str) -> Result<(), AnnError> {
    if basename.is_empty() || basename.contains(['/', '\\']) || basename.starts_with('.') {
        return Err(AnnError::InvalidParams {
            reason: format!("'{basename}' is not a plain file basename"),
        });
    }
    Ok(())
}

fn panic_message(payload: Box<dyn Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-text panic payload".to_string()
    }
}

/// A bounds-checked, native-endian reader of one dump file.
struct Reader {
    inner: BufReader<File>,
    path: PathBuf,
    pos: u64,
    len: u64,
}

impl Reader {
    fn open(path: &Path) -> Result<Self, AnnError> {
        let file = File::open(path).map_err(|e| AnnError::io(path, e))?;
        let len = file.metadata().map_err(|e| AnnError::io(path, e))?.len();
        Ok(Reader {
            inner: BufReader::new(file),
            path: path.to_path_buf(),
            pos: 0,
            len,
        })
    }

    fn bad(&self, reason: impl std::fmt::Display) -> AnnError {
        AnnError::corrupt(&self.path, format!("at byte {}: {reason}", self.pos))
    }

    fn remaining(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }

    fn fill(&mut self, buf: &mut [u8], what: &str) -> Result<(), AnnError> {
        self.inner.read_exact(buf).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                self.bad(format!("file truncated inside {what}"))
            } else {
                AnnError::io(&self.path, e)
            }
        })?;
        self.pos += buf.len() as u64;
        Ok(())
    }

    fn bytes<const N: usize>(&mut self, what: &str) -> Result<[u8; N], AnnError> {
        let mut b = [0u8; N];
        self.fill(&mut b, what)?;
        Ok(b)
    }

    fn u8(&mut self, what: &str) -> Result<u8, AnnError> {
        Ok(u8::from_ne_bytes(self.bytes(what)?))
    }

    fn u32(&mut self, what: &str) -> Result<u32, AnnError> {
        Ok(u32::from_ne_bytes(self.bytes(what)?))
    }

    fn i32(&mut self, what: &str) -> Result<i32, AnnError> {
        Ok(i32::from_ne_bytes(self.bytes(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64, AnnError> {
        Ok(u64::from_ne_bytes(self.bytes(what)?))
    }

    fn usize(&mut self, what: &str) -> Result<usize, AnnError> {
        Ok(usize::from_ne_bytes(self.bytes(what)?))
    }

    fn f32(&mut self, what: &str) -> Result<f32, AnnError> {
        Ok(f32::from_ne_bytes(self.bytes(what)?))
    }

    fn f64(&mut self, what: &str) -> Result<f64, AnnError> {
        Ok(f64::from_ne_bytes(self.bytes(what)?))
    }

    fn expect_u32(&mut self, want: u32, what: &str) -> Result<(), AnnError> {
        let got = self.u32(what)?;
        if got != want {
            return Err(self.bad(format!("bad {what} {got:#x}")));
        }
        Ok(())
    }

    /// A length-prefixed name (at most 256 bytes, as `hnsw_rs` requires).
    fn name(&mut self, what: &str) -> Result<String, AnnError> {
        let len = self.usize(what)?;
        if len > 256 || len as u64 > self.remaining() {
            return Err(self.bad(format!("bad length {len} of {what}")));
        }
        let mut buf = vec![0u8; len];
        self.fill(&mut buf, what)?;
        String::from_utf8(buf).map_err(|_| self.bad(format!("{what} is not UTF-8")))
    }

    fn expect_end(&mut self) -> Result<(), AnnError> {
        let mut probe = [0u8; 1];
        match self.inner.read(&mut probe) {
            Ok(0) => Ok(()),
            Ok(_) => Err(self.bad("trailing bytes after the end of the index")),
            Err(e) => Err(AnnError::io(&self.path, e)),
        }
    }
}

/// Parses a dump completely and checks everything the `hnsw_rs` loader relies
/// on (see "Loading damaged files" in the module docs). With `vectors`
/// (normalised, row-major), also checks that the stored vectors equal them bit
/// for bit.
fn check_dump(
    graph_path: &Path,
    data_path: &Path,
    vectors: Option<&[f32]>,
    len: usize,
    dim: usize,
    params: &HnswParams,
) -> Result<(), AnnError> {
    let mut g = Reader::open(graph_path)?;
    // Description.
    g.expect_u32(MAGIC_DESCRIPTION, "graph file magic")?;
    if g.u8("dump mode")? != 1 {
        return Err(g.bad("not a full dump"));
    }
    let m = g.u8("max connections")?;
    if usize::from(m) != params.m {
        return Err(g.bad(format!("m = {m}, the sidecar says {}", params.m)));
    }
    let scale = g.f64("level scale")?;
    if !(scale.is_finite() && scale > 0.0) {
        return Err(g.bad(format!("bad level scale {scale}")));
    }
    if g.u8("layer count")? != LAYERS {
        return Err(g.bad("bad layer count"));
    }
    let ef = g.usize("ef_construction")?;
    if ef != params.ef_construction {
        return Err(g.bad(format!(
            "ef_construction {ef}, the sidecar says {}",
            params.ef_construction
        )));
    }
    let n = g.usize("point count")?;
    if n != len {
        return Err(g.bad(format!("{n} points, expected {len}")));
    }
    let d = g.usize("dimension")?;
    if d != dim {
        return Err(g.bad(format!("dimension {d}, expected {dim}")));
    }
    let distance = g.name("distance name")?;
    if distance != type_name::<UnitCosine>() {
        return Err(g.bad(format!("distance '{distance}'")));
    }
    let t_name = g.name("value type name")?;
    if t_name != type_name::<f32>() {
        return Err(g.bad(format!("value type '{t_name}'")));
    }

    // Layers: points, each with its neighbour lists.
    if g.u8("layer count")? != LAYERS {
        return Err(g.bad("bad layer count"));
    }
    let mut layers: Vec<Vec<usize>> = Vec::with_capacity(usize::from(LAYERS));
    let mut placed = 0usize;
    let mut seen = vec![false; len];
    // (layer, rank, id) of every neighbour, checked once all layers are known.
    let mut links: Vec<(u8, u32, usize)> = Vec::new();
    for l in 0..LAYERS {
        g.expect_u32(MAGIC_LAYER, "layer magic")?;
        let count = g.usize("layer size")?;
        if count > len - placed {
            return Err(g.bad(format!("layer {l} claims {count} points")));
        }
        let mut layer = Vec::with_capacity(count);
        for rank in 0..count {
            g.expect_u32(MAGIC_POINT, "point magic")?;
            let id = g.usize("point id")?;
            if id >= len || seen[id] {
                return Err(g.bad(format!("bad or repeated point id {id}")));
            }
            seen[id] = true;
            let (pl, pr) = (g.u8("point layer")?, g.i32("point rank")?);
            if pl != l || usize::try_from(pr).ok() != Some(rank) {
                return Err(g.bad(format!("point ({pl}, {pr}) stored at ({l}, {rank})")));
            }
            for _ in 0..LAYERS {
                let links_here = g.usize("neighbour count")?;
                if links_here > len
                    || (links_here as u64).saturating_mul(LINK_BYTES) > g.remaining()
                {
                    return Err(g.bad(format!("bad neighbour count {links_here}")));
                }
                for _ in 0..links_here {
                    let nid = g.usize("neighbour id")?;
                    let nl = g.u8("neighbour layer")?;
                    let nr = g.i32("neighbour rank")?;
                    let dist = g.f32("neighbour distance")?;
                    let Ok(nr) = u32::try_from(nr) else {
                        return Err(g.bad(format!("negative neighbour rank {nr}")));
                    };
                    if nl >= LAYERS || !(0.0..=2.0).contains(&dist) {
                        return Err(g.bad(format!("bad neighbour ({nl}, {nr}) at distance {dist}")));
                    }
                    links.push((nl, nr, nid));
                }
            }
            layer.push(id);
        }
        placed += count;
        layers.push(layer);
    }
    if placed != len {
        return Err(g.bad(format!("{placed} points stored, expected {len}")));
    }
    let at = |l: u8, r: u32| {
        layers
            .get(usize::from(l))
            .and_then(|v| v.get(r as usize))
            .copied()
    };
    let (eid, el, er) = (
        g.usize("entry point id")?,
        g.u8("entry layer")?,
        g.i32("entry rank")?,
    );
    if u32::try_from(er).ok().and_then(|r| at(el, r)) != Some(eid) {
        return Err(g.bad(format!("bad entry point {eid} at ({el}, {er})")));
    }
    g.expect_end()?;
    if let Some(&(l, r, id)) = links.iter().find(|&&(l, r, id)| at(l, r) != Some(id)) {
        return Err(AnnError::corrupt(
            graph_path,
            format!("neighbour ({l}, {r}) does not hold point {id}"),
        ));
    }

    // Data: a header, then one record per point, in graph order.
    let mut v = Reader::open(data_path)?;
    v.expect_u32(MAGIC_DATA, "data file magic")?;
    if v.usize("dimension")? != dim {
        return Err(v.bad("dimension differs from the graph file"));
    }
    let bytes_per_vector = dim * size_of::<f32>();
    let mut buf = vec![0u8; bytes_per_vector];
    for &id in layers.iter().flatten() {
        v.expect_u32(MAGIC_DATA, "record magic")?;
        if v.u64("record id")? != id as u64 {
            return Err(v.bad(format!("record out of order, expected point {id}")));
        }
        if v.u64("record length")? != bytes_per_vector as u64 {
            return Err(v.bad("bad record length"));
        }
        v.fill(&mut buf, "a vector")?;
        if let Some(vectors) = vectors {
            let want = &vectors[id * dim..(id + 1) * dim];
            let same = buf
                .chunks_exact(4)
                .zip(want)
                .all(|(b, w)| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) == w.to_bits());
            if !same {
                return Err(AnnError::corrupt(
                    data_path,
                    format!("the stored vector of point {id} differs from the given vectors"),
                ));
            }
        }
    }
    v.expect_end()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ann::{ExactIndex, recall_at_k, testdata::clustered};
    use proptest::prelude::*;
    use rayon::prelude::*;
    use std::sync::OnceLock;

    /// 2,000 clustered 32-dim vectors and a parallel-built index over them.
    fn shared() -> &'static (Array2<f32>, HnswIndex) {
        static SHARED: OnceLock<(Array2<f32>, HnswIndex)> = OnceLock::new();
        SHARED.get_or_init(|| {
            let v = clustered(2000, 32, 40, 7);
            let idx = HnswIndex::build(&v, &HnswParams::default()).unwrap();
            (v, idx)
        })
    }

    fn queries() -> Array2<f32> {
        clustered(200, 32, 40, 99)
    }

    #[test]
    fn recall_at_10_against_exact() {
        let (v, idx) = shared();
        assert_eq!((idx.len(), idx.dim()), (2000, 32));
        let exact = ExactIndex::new(v);
        let r = recall_at_k(&exact, idx, &queries(), 10);
        assert!(r >= 0.95, "recall@10 = {r}");
        // An indexed vector finds itself first.
        let own = idx.search(&v.row(5).to_vec(), 3);
        assert_eq!(own[0].0, 5);
        assert!((own[0].1 - 1.0).abs() < 1e-5);
    }

    #[test]
    fn concurrent_searches_agree_with_serial_ones() {
        let (_, idx) = shared();
        let q = queries();
        let serial: Vec<_> = q
            .rows()
            .into_iter()
            .map(|r| idx.search(&r.to_vec(), 10))
            .collect();
        let parallel: Vec<_> = (0..q.nrows())
            .into_par_iter()
            .map(|i| idx.search(&q.row(i).to_vec(), 10))
            .collect();
        assert_eq!(serial, parallel);
    }

    #[test]
    fn search_edge_cases() {
        let (_, idx) = shared();
        assert!(idx.search(&[1.0; 31], 5).is_empty());
        assert!(idx.search(&[f32::NAN; 32], 5).is_empty());
        assert!(idx.search(&[1.0; 32], 0).is_empty());
        let all = idx.search(&[1.0; 32], 5000);
        assert!(all.len() <= 2000 && all.len() >= 64);
        assert!(all.windows(2).all(|w| rank_order(&w[0], &w[1]).is_lt()));
        assert!(all.iter().all(|x| (-1.0..=1.0).contains(&x.1)));
    }

    #[test]
    fn zero_and_duplicate_vectors_do_not_panic() {
        let mut v = clustered(300, 8, 5, 3);
        v.row_mut(0).fill(0.0);
        v.row_mut(1).fill(0.0);
        let r2 = v.row(2).to_owned();
        v.row_mut(3).assign(&r2);
        let idx = HnswIndex::build(&v, &HnswParams::default()).unwrap();
        let hits = idx.search(&[0.0; 8], 5);
        assert!(hits.iter().all(|x| x.1 == 0.0));
        let twins = idx.search(&r2.to_vec(), 2);
        let ids: Vec<u32> = twins.iter().map(|x| x.0).collect();
        assert_eq!(ids, vec![2, 3]);
    }

    #[test]
    fn refuses_bad_input() {
        let v = clustered(10, 4, 2, 1);
        let bad = |p: HnswParams| HnswIndex::build(&v, &p).unwrap_err();
        for p in [
            HnswParams {
                m: 1,
                ..HnswParams::default()
            },
            HnswParams {
                m: 256,
                ..HnswParams::default()
            },
            HnswParams {
                ef_search: 0,
                ..HnswParams::default()
            },
        ] {
            assert!(matches!(bad(p), AnnError::InvalidParams { .. }));
        }
        let empty = HnswIndex::build(&Array2::zeros((0, 4)), &HnswParams::default());
        assert!(matches!(empty, Err(AnnError::Empty { rows: 0, dim: 4 })));
        let mut nan = v.clone();
        nan[[7, 2]] = f32::NAN;
        assert!(matches!(
            HnswIndex::build(&nan, &HnswParams::default()),
            Err(AnnError::NonFinite { row: 7 })
        ));
        let one = HnswIndex::build(
            &v.slice(ndarray::s![..1, ..]).to_owned(),
            &HnswParams::default(),
        )
        .unwrap();
        assert_eq!(one.search(&[1.0; 4], 3).len(), 1);
    }

    #[test]
    fn dump_and_load_roundtrip() {
        let (v, idx) = shared();
        let dir = tempfile::tempdir().unwrap();
        let files = idx.dump(dir.path(), "similar").unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, HnswIndex::file_names("similar").to_vec());
        let loaded = HnswIndex::load(dir.path(), "similar", v).unwrap();
        assert_eq!(loaded.params(), idx.params());
        assert_eq!((loaded.len(), loaded.dim()), (idx.len(), idx.dim()));
        for q in queries().rows() {
            let q = q.to_vec();
            assert_eq!(loaded.search(&q, 10), idx.search(&q, 10));
        }
        // A reloaded index dumps the same graph again. Only the level scale
        // (bytes 6..14 of the graph file, used for future insertions) differs:
        // hnsw_rs multiplies the stored scale by the default one on reload.
        let again = tempfile::tempdir().unwrap();
        loaded.dump(again.path(), "similar").unwrap();
        for name in HnswIndex::file_names("similar") {
            let mut a = std::fs::read(dir.path().join(&name)).unwrap();
            let mut b = std::fs::read(again.path().join(&name)).unwrap();
            if name.ends_with(".graph") {
                a[6..14].fill(0);
                b[6..14].fill(0);
            }
            let first = a.iter().zip(&b).position(|(x, y)| x != y);
            assert!(
                a == b,
                "{name}: lengths {} {}, first difference at {first:?}",
                a.len(),
                b.len()
            );
        }
    }

    #[test]
    fn serial_builds_are_reproducible() {
        let v = clustered(400, 16, 8, 11);
        let p = HnswParams {
            deterministic: true,
            ..HnswParams::default()
        };
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        HnswIndex::build(&v, &p)
            .unwrap()
            .dump(a.path(), "x")
            .unwrap();
        HnswIndex::build(&v, &p)
            .unwrap()
            .dump(b.path(), "x")
            .unwrap();
        for name in HnswIndex::file_names("x") {
            assert_eq!(
                std::fs::read(a.path().join(&name)).unwrap(),
                std::fs::read(b.path().join(&name)).unwrap()
            );
        }
    }

    /// A small dumped index for the corruption tests.
    fn small_dump() -> (Array2<f32>, tempfile::TempDir) {
        let v = clustered(120, 6, 4, 5);
        let dir = tempfile::tempdir().unwrap();
        HnswIndex::build(
            &v,
            &HnswParams {
                m: 4,
                ..HnswParams::default()
            },
        )
        .unwrap()
        .dump(dir.path(), "s")
        .unwrap();
        (v, dir)
    }

    fn load_err(dir: &Path, v: &Array2<f32>) -> AnnError {
        let err = HnswIndex::load(dir, "s", v).unwrap_err();
        assert!(
            !matches!(err, AnnError::Panicked { .. }),
            "checks missed: {err}"
        );
        err
    }

    #[test]
    fn truncated_or_damaged_files_are_refused() {
        let (v, dir) = small_dump();
        HnswIndex::load(dir.path(), "s", &v).unwrap();
        for name in ["s.hnsw.graph", "s.hnsw.data"] {
            let path = dir.path().join(name);
            let original = std::fs::read(&path).unwrap();
            for keep in [0, 3, 40, original.len() / 2, original.len() - 1] {
                std::fs::write(&path, &original[..keep]).unwrap();
                let err = load_err(dir.path(), &v);
                assert!(
                    matches!(err, AnnError::Corrupt { .. }),
                    "{name}[..{keep}]: {err}"
                );
            }
            let mut longer = original.clone();
            longer.push(0);
            std::fs::write(&path, &longer).unwrap();
            assert!(matches!(load_err(dir.path(), &v), AnnError::Corrupt { .. }));
            let mut magic = original.clone();
            magic[0] ^= 0xff;
            std::fs::write(&path, &magic).unwrap();
            assert!(matches!(load_err(dir.path(), &v), AnnError::Corrupt { .. }));
            std::fs::write(&path, &original).unwrap();
        }
        std::fs::write(dir.path().join("s.hnsw.json"), b"{").unwrap();
        assert!(matches!(load_err(dir.path(), &v), AnnError::Corrupt { .. }));
        std::fs::remove_file(dir.path().join("s.hnsw.json")).unwrap();
        assert!(matches!(load_err(dir.path(), &v), AnnError::Io { .. }));
    }

    #[test]
    fn other_vectors_are_refused() {
        let (v, dir) = small_dump();
        let mut other = v.clone();
        other[[17, 3]] += 0.5;
        let err = load_err(dir.path(), &other);
        assert!(err.to_string().contains("point 17"), "{err}");
        let fewer = v.slice(ndarray::s![..100, ..]).to_owned();
        assert!(matches!(
            load_err(dir.path(), &fewer),
            AnnError::Corrupt { .. }
        ));
        assert!(matches!(
            HnswIndex::load(dir.path(), "../s", &v),
            Err(AnnError::InvalidParams { .. })
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Any single damaged byte gives an error or a working index, never a
        /// panic or an exit.
        #[test]
        fn damaged_bytes_never_crash(which in 0usize..2, at in any::<prop::sample::Index>(), xor in 1u8..=255) {
            let (v, dir) = small_dump();
            let path = dir.path().join(["s.hnsw.graph", "s.hnsw.data"][which]);
            let mut bytes = std::fs::read(&path).unwrap();
            let i = at.index(bytes.len());
            bytes[i] ^= xor;
            std::fs::write(&path, &bytes).unwrap();
            match HnswIndex::load(dir.path(), "s", &v) {
                Ok(idx) => prop_assert_eq!(idx.search(&v.row(0).to_vec(), 5).len(), 5),
                Err(e) => prop_assert!(!matches!(e, AnnError::Panicked { .. }), "{}", e),
            }
        }
    }
}
