//! Read-only memory-mapped files and typed views of them: arrays that are
//! either owned (`Vec`) or read in place from a mapped file ([`Buf`]).
//!
//! A model's per-customer files (purchase history, lists, profiles,
//! replenishment state) are a few bytes a customer but millions of
//! customers: read in place, they cost the page cache rather than a second,
//! decoded copy on the heap, and a reload does not parse them.
//!
//! # Safety
//! This module holds the only `unsafe` of the mapped reads, in two places:
//!
//! - [`Mapping::open`] maps a file. A mapping is only sound while no one
//!   modifies or truncates the file: the bytes a `&[u8]` points at would
//!   change under the borrow (or, truncated, fault). Encore maps only model
//!   artifacts, which are immutable: `encore-train` writes every file into a
//!   hidden staging directory, fsyncs it and renames the directory into
//!   place; nothing writes into an artifact afterwards, and a store removes
//!   an old version's directory (unlinking, which keeps a mapped file's
//!   pages alive) rather than rewriting it. Editing a model's files in place
//!   while a server has it loaded is unsupported (and caught by the checksums
//!   at the next load).
//! - [`Buf`]'s view casts aligned little-endian bytes to a slice of a plain
//!   number type ([`Element`]: every bit pattern is a valid value). The
//!   alignment and length are checked once, when the view is made; a
//!   big-endian target, or bytes that are not aligned, get a decoded copy
//!   instead.

use std::fmt;
use std::fs::File;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A file mapped read-only into memory, whole.
pub struct Mapping {
    map: memmap2::Mmap,
    path: PathBuf,
}

impl Mapping {
    /// Maps `path` read-only. The file must not be modified while mapped
    /// (see the module docs).
    pub fn open(path: &Path) -> std::io::Result<Arc<Mapping>> {
        let file = File::open(path)?;
        // SAFETY: artifacts are immutable once renamed into place (see the
        // module docs); the mapping is read-only and private to this process.
        let map = unsafe { memmap2::MmapOptions::new().map(&file)? };
        Ok(Arc::new(Mapping {
            map,
            path: path.to_path_buf(),
        }))
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The mapped file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl fmt::Debug for Mapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mapping({}, {} bytes)", self.path.display(), self.len())
    }
}

mod sealed {
    pub trait Sealed {}
}

/// A plain number type that [`Buf`] can view in place: every bit pattern of
/// its size is a valid value, and its file encoding is little-endian.
pub trait Element: Copy + sealed::Sealed + 'static {
    /// Bytes of one value in a file.
    const FILE_SIZE: usize;
    /// Decodes one little-endian value from `b` (exactly its size).
    fn from_le(b: &[u8]) -> Self;
}

macro_rules! element {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl Element for $t {
            const FILE_SIZE: usize = std::mem::size_of::<$t>();
            #[inline]
            fn from_le(b: &[u8]) -> Self {
                <$t>::from_le_bytes(b.try_into().expect("one value's bytes"))
            }
        }
    )*};
}
element!(u32, i32, f32, u64, i64, f64);

// `usize` is stored as a `u64` in files; viewed in place on 64-bit targets only.
impl sealed::Sealed for usize {}
impl Element for usize {
    const FILE_SIZE: usize = 8;
    #[inline]
    fn from_le(b: &[u8]) -> Self {
        let v = u64::from_le_bytes(b.try_into().expect("8 bytes"));
        usize::try_from(v).unwrap_or(usize::MAX)
    }
}

/// An array of `T`: owned, or read in place from a [`Mapping`].
pub enum Buf<T: Element> {
    Owned(Vec<T>),
    Mapped {
        map: Arc<Mapping>,
        /// Byte offset of the first value; aligned for `T`.
        offset: usize,
        len: usize,
    },
}

impl<T: Element> Buf<T> {
    /// The `len` values of `T` at byte `offset` of `map`, read in place when
    /// the target is little-endian and the bytes are aligned for `T`,
    /// decoded into an owned copy otherwise. `None` if the range is not
    /// within the file.
    pub fn view(map: &Arc<Mapping>, offset: usize, len: usize) -> Option<Buf<T>> {
        let size = T::FILE_SIZE;
        let end = len.checked_mul(size)?.checked_add(offset)?;
        let bytes = map.bytes().get(offset..end)?;
        if cfg!(target_endian = "little")
            && size == std::mem::size_of::<T>()
            && (bytes.as_ptr() as usize).is_multiple_of(std::mem::align_of::<T>())
        {
            return Some(Buf::Mapped {
                map: Arc::clone(map),
                offset,
                len,
            });
        }
        Some(Buf::Owned(
            bytes.chunks_exact(size).map(T::from_le).collect(),
        ))
    }

    /// Whether the values are read in place from a mapped file.
    pub fn is_mapped(&self) -> bool {
        matches!(self, Buf::Mapped { .. })
    }
}

impl<T: Element> Deref for Buf<T> {
    type Target = [T];

    #[inline]
    fn deref(&self) -> &[T] {
        match self {
            Buf::Owned(v) => v,
            Buf::Mapped { map, offset, len } => {
                let bytes = &map.bytes()[*offset..*offset + *len * std::mem::size_of::<T>()];
                // SAFETY: `view` checked that these bytes are within the
                // mapping, aligned for `T` and little-endian like `T` on this
                // target; `T` is a plain number type (`Element` is sealed),
                // valid for every bit pattern; the mapping lives as long as
                // `self` holds its `Arc`, and is never written (module docs);
                // `T`'s size is its `FILE_SIZE` there.
                unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<T>(), *len) }
            }
        }
    }
}

impl<T: Element> From<Vec<T>> for Buf<T> {
    fn from(v: Vec<T>) -> Self {
        Buf::Owned(v)
    }
}

impl<T: Element> Default for Buf<T> {
    fn default() -> Self {
        Buf::Owned(Vec::new())
    }
}

impl<T: Element> Clone for Buf<T> {
    fn clone(&self) -> Self {
        match self {
            Buf::Owned(v) => Buf::Owned(v.clone()),
            Buf::Mapped { map, offset, len } => Buf::Mapped {
                map: Arc::clone(map),
                offset: *offset,
                len: *len,
            },
        }
    }
}

impl<T: Element + fmt::Debug> fmt::Debug for Buf<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: Element + PartialEq> PartialEq for Buf<T> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_read_what_was_written_in_place_or_decoded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.bin");
        let mut bytes = Vec::new();
        for v in [1u32, 2, 0xdead_beef, 7] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        bytes.extend_from_slice(&(1u64 << 40).to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let map = Mapping::open(&path).unwrap();
        let all: Buf<u32> = Buf::view(&map, 0, 4).unwrap();
        assert_eq!(&*all, &[1, 2, 0xdead_beef, 7]);
        assert!(all.is_mapped());
        // Unaligned for u32: a decoded copy with the same values.
        let odd: Buf<u32> = Buf::view(&map, 2, 1).unwrap();
        assert_eq!(&*odd, &[u32::from_le_bytes([0, 0, 2, 0])]);
        assert!(!odd.is_mapped());
        let wide: Buf<usize> = Buf::view(&map, 16, 1).unwrap();
        assert_eq!(&*wide, &[1usize << 40]);
        // Past the end, or overflowing: none.
        assert!(Buf::<u32>::view(&map, 16, 3).is_none());
        assert!(Buf::<u64>::view(&map, 8, usize::MAX).is_none());
        assert_eq!(all.clone(), Buf::from(vec![1, 2, 0xdead_beef, 7]));
    }
}
