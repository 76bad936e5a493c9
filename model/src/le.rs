//! Little-endian writing of value arrays, shared by the artifact's binary
//! files: values are converted a few thousand at a time into a small buffer,
//! so a file is streamed, never held whole in memory.

use std::io::Write;

/// Writes `values` to `w` as little-endian bytes given by `bytes`.
pub(crate) fn put_le<const N: usize, T: Copy>(
    w: &mut impl Write,
    values: &[T],
    bytes: impl Fn(T) -> [u8; N],
) -> std::io::Result<()> {
    let mut chunk = Vec::with_capacity(N * 4096);
    for block in values.chunks(4096) {
        chunk.clear();
        for &v in block {
            chunk.extend_from_slice(&bytes(v));
        }
        w.write_all(&chunk)?;
    }
    Ok(())
}

/// Passes bytes on to `out` and checksums them (CRC-32).
pub(crate) struct Crc32Writer<W> {
    pub(crate) out: W,
    pub(crate) crc: crc32fast::Hasher,
    pub(crate) bytes: u64,
}

impl<W> Crc32Writer<W> {
    pub(crate) fn new(out: W) -> Self {
        Crc32Writer {
            out,
            crc: crc32fast::Hasher::new(),
            bytes: 0,
        }
    }
}

impl<W: Write> Write for Crc32Writer<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.crc.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_bytes_and_checksum_match_the_whole_buffer() {
        let values: Vec<u32> = (0..10_000).map(|i| i * 7919).collect();
        let mut w = Crc32Writer::new(Vec::new());
        put_le(&mut w, &values, u32::to_le_bytes).unwrap();
        let whole: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(w.out, whole);
        assert_eq!(w.bytes, whole.len() as u64);
        assert_eq!(w.crc.finalize(), crc32fast::hash(&whole));
    }
}
