//! Direct I/O for large objects: their bytes go from a buffer of ours to
//! the device without passing through the page cache.
//!
//! A buffered write copies every byte into page-cache pages that the
//! kernel must find, fill and later write back. In a profile of a 2 GiB
//! PUT that copy was a third of the server's CPU, and far more where free
//! pages are cold: in a virtual machine whose host takes back the memory
//! its guest frees, every new page-cache page is faulted in again (5 s of
//! system time for 2 GiB, against 0.2 s written directly). An upload is
//! not read back soon, and caching it would evict what is. With
//! `O_DIRECT` the bytes are copied once, from the socket's buffers into an
//! aligned buffer, and the device reads that buffer while the next one
//! fills on the request's task.

use std::io::Write;
use std::path::Path;

/// Bytes gathered per direct write: large enough that the device streams,
/// small enough that two buffers per upload stay a small part of the
/// memory budget.
pub(super) const DIRECT_WRITE_BYTES: usize = 2 * 1024 * 1024;
/// The largest alignment a filesystem may ask for before direct I/O is
/// left alone (block sizes are 512 bytes or 4 KiB in practice).
const MAX_ALIGNMENT: usize = 64 * 1024;

/// That a filesystem takes direct writes, and the alignment of memory,
/// offsets and lengths it asks of them.
#[derive(Debug, Clone, Copy)]
pub(super) struct DirectIo {
    alignment: usize,
}

impl DirectIo {
    /// Whether `dir`'s filesystem takes direct writes to unnamed files,
    /// asked of the filesystem itself (`statx` with `STATX_DIOALIGN`,
    /// Linux 6.1 and later) and checked with one aligned write. `Err`
    /// says why not; the writer then uses the page cache.
    pub(super) fn probe(dir: &Path) -> std::io::Result<Self> {
        let file = super::unnamed::create(dir, true)?;
        let alignment = alignment_of(&file)?;
        if !alignment.is_power_of_two() || alignment > MAX_ALIGNMENT {
            return Err(std::io::Error::other(format!(
                "direct I/O alignment {alignment} is not a power of two up to {MAX_ALIGNMENT}"
            )));
        }
        let io = Self { alignment };
        let mut block = AlignedBuffer::new(alignment, alignment);
        block.fill_from(&[0]);
        (&file).write_all(block.padded(alignment))?;
        Ok(io)
    }

    /// A new unnamed file in `dir`, opened for direct writes.
    pub(super) fn create(self, dir: &Path) -> std::io::Result<std::fs::File> {
        super::unnamed::create(dir, true)
    }

    /// Whether a write of `length` bytes at `offset` can go direct.
    pub(super) fn fits(self, offset: u64, length: u64) -> bool {
        let alignment = self.alignment as u64;
        offset.is_multiple_of(alignment) && length.is_multiple_of(alignment)
    }

    /// Writes `pieces` at `offset` of the existing file `path`, directly:
    /// through one aligned buffer of [`DIRECT_WRITE_BYTES`], so a part of
    /// a resumable upload costs no page-cache pages (see the module's
    /// notes). `offset` and the length must [`fits`](Self::fits). Not
    /// synced: the device may still cache the bytes until a flush.
    pub(super) fn write_at<B: AsRef<[u8]>>(
        self,
        path: &Path,
        offset: u64,
        pieces: &[B],
        spares: &SpareBuffers,
    ) -> std::io::Result<()> {
        let file = open_direct(path)?;
        let mut buffer = spares.take(self.alignment);
        let written = write_through(&file, offset, pieces, &mut buffer);
        spares.give_back(buffer);
        written
    }
}

/// Writes `pieces` at `offset` of `file` through `buffer`, a whole buffer
/// at a time, then what is left.
fn write_through<B: AsRef<[u8]>>(
    file: &std::fs::File,
    mut offset: u64,
    pieces: &[B],
    buffer: &mut AlignedBuffer,
) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    buffer.clear();
    for piece in pieces {
        let mut bytes = piece.as_ref();
        while !bytes.is_empty() {
            let taken = buffer.fill_from(bytes);
            bytes = &bytes[taken..];
            if buffer.is_full() {
                file.write_all_at(buffer.filled(), offset)?;
                offset += buffer.filled().len() as u64;
                buffer.clear();
            }
        }
    }
    if !buffer.filled().is_empty() {
        file.write_all_at(buffer.filled(), offset)?;
    }
    Ok(())
}

/// Aligned buffers kept for the next parts' direct writes. A fresh 2 MiB
/// buffer per part is zeroed (`vec![0; n]`): in a profile of
/// `scripts/bench resumable` that memset was 3 % of a resumable upload's
/// server CPU, on a machine whose two cores (hashing, the client) are what
/// bound the rate. At most [`SPARE_BUFFERS_KEPT`] are kept, so idle memory
/// stays small; more parts at once allocate their own.
#[derive(Default)]
pub(super) struct SpareBuffers(std::sync::Mutex<Vec<AlignedBuffer>>);

const SPARE_BUFFERS_KEPT: usize = 4;

impl std::fmt::Debug for SpareBuffers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kept = self.0.lock().map_or(0, |kept| kept.len());
        f.debug_struct("SpareBuffers").field("kept", &kept).finish()
    }
}

impl SpareBuffers {
    /// A kept buffer of `alignment`, or a new one.
    fn take(&self, alignment: usize) -> AlignedBuffer {
        let kept = self
            .0
            .lock()
            .ok()
            .and_then(|mut kept| kept.pop())
            .filter(|buffer| buffer.fits(DIRECT_WRITE_BYTES, alignment));
        kept.unwrap_or_else(|| AlignedBuffer::new(DIRECT_WRITE_BYTES, alignment))
    }

    fn give_back(&self, buffer: AlignedBuffer) {
        if let Ok(mut kept) = self.0.lock() {
            if kept.len() < SPARE_BUFFERS_KEPT {
                kept.push(buffer);
            }
        }
    }
}

/// Opens an existing file for direct writes.
#[cfg(target_os = "linux")]
fn open_direct(path: &Path) -> std::io::Result<std::fs::File> {
    use rustix::fs::{Mode, OFlags, CWD};
    let flags = OFlags::WRONLY | OFlags::DIRECT | OFlags::CLOEXEC;
    Ok(std::fs::File::from(rustix::fs::openat(
        CWD,
        path,
        flags,
        Mode::empty(),
    )?))
}

#[cfg(not(target_os = "linux"))]
fn open_direct(_path: &Path) -> std::io::Result<std::fs::File> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "direct writes are Linux's O_DIRECT here",
    ))
}

#[cfg(target_os = "linux")]
fn alignment_of(file: &std::fs::File) -> std::io::Result<usize> {
    use rustix::fs::{statx, AtFlags, StatxFlags};
    let stat = statx(file, "", AtFlags::EMPTY_PATH, StatxFlags::DIOALIGN)?;
    let (memory, offset) = (stat.stx_dio_mem_align, stat.stx_dio_offset_align);
    if stat.stx_mask & StatxFlags::DIOALIGN.bits() == 0 || memory == 0 || offset == 0 {
        return Err(std::io::Error::other(
            "the filesystem reports no direct I/O alignment for this file",
        ));
    }
    Ok(memory.max(offset) as usize)
}

#[cfg(not(target_os = "linux"))]
fn alignment_of(_file: &std::fs::File) -> std::io::Result<usize> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "direct I/O alignment is asked of Linux's statx",
    ))
}

/// A fixed-size buffer whose first byte sits at a multiple of the
/// alignment, as direct I/O requires of the memory it reads.
pub(super) struct AlignedBuffer {
    storage: Vec<u8>,
    start: usize,
    filled: usize,
    capacity: usize,
}

impl AlignedBuffer {
    /// `capacity` must be a multiple of `alignment`, a power of two.
    fn new(capacity: usize, alignment: usize) -> Self {
        // Allocated once and never grown, so the data never moves.
        let storage = vec![0u8; capacity + alignment];
        let start = (alignment - storage.as_ptr().addr() % alignment) % alignment;
        Self {
            storage,
            start,
            filled: 0,
            capacity,
        }
    }

    /// Copies as much of `bytes` as fits and returns how much that was.
    fn fill_from(&mut self, bytes: &[u8]) -> usize {
        let taken = bytes.len().min(self.capacity - self.filled);
        let at = self.start + self.filled;
        self.storage[at..at + taken].copy_from_slice(&bytes[..taken]);
        self.filled += taken;
        taken
    }

    fn is_full(&self) -> bool {
        self.filled == self.capacity
    }

    /// Whether this buffer holds `capacity` bytes aligned to `alignment`.
    fn fits(&self, capacity: usize, alignment: usize) -> bool {
        self.capacity == capacity
            && (self.storage.as_ptr().addr() + self.start).is_multiple_of(alignment)
    }

    fn filled(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.filled]
    }

    /// The filled bytes and zeros after them up to a multiple of
    /// `alignment`: a direct write's length must be one.
    fn padded(&mut self, alignment: usize) -> &[u8] {
        let length = self.filled.div_ceil(alignment) * alignment;
        self.storage[self.start + self.filled..self.start + length].fill(0);
        &self.storage[self.start..self.start + length]
    }

    fn clear(&mut self) {
        self.filled = 0;
    }
}

/// The staging file with the spare buffer, handed back by each write.
type FileAndBuffer = (std::fs::File, AlignedBuffer);

/// Where the staging file is: on hand between writes, or in a write on
/// the blocking pool.
enum Previous {
    Done(FileAndBuffer),
    Writing(tokio::task::JoinHandle<std::io::Result<FileAndBuffer>>),
}

/// A large object's staging file written with direct I/O: bytes gather in
/// one aligned buffer while the other is written on the blocking pool, so
/// the device works while the next bytes arrive.
pub(super) struct DirectWrites {
    alignment: usize,
    filling: AlignedBuffer,
    /// `None` once a write failed: the writer is closed then.
    previous: Option<Previous>,
    /// Bytes written to the file so far, all in whole buffers.
    written: u64,
}

impl DirectWrites {
    /// Direct writes into `file`, a new file made by [`DirectIo::create`].
    pub(super) fn new(file: std::fs::File, io: DirectIo) -> Self {
        let buffer = || AlignedBuffer::new(DIRECT_WRITE_BYTES, io.alignment);
        Self {
            alignment: io.alignment,
            filling: buffer(),
            previous: Some(Previous::Done((file, buffer()))),
            written: 0,
        }
    }

    /// Appends `bytes`, writing each buffer as it fills.
    pub(super) async fn write(&mut self, mut bytes: &[u8]) -> std::io::Result<()> {
        while !bytes.is_empty() {
            let taken = self.filling.fill_from(bytes);
            bytes = &bytes[taken..];
            if self.filling.is_full() {
                self.write_filled().await?;
            }
        }
        Ok(())
    }

    /// The file and spare buffer once the last write is done.
    async fn settle(&mut self) -> std::io::Result<FileAndBuffer> {
        match self.previous.take() {
            Some(Previous::Done(done)) => Ok(done),
            Some(Previous::Writing(writing)) => writing
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e))),
            None => Err(std::io::Error::other("an earlier direct write failed")),
        }
    }

    /// Starts writing the full buffer; the spare becomes the one to fill.
    async fn write_filled(&mut self) -> std::io::Result<()> {
        let (file, mut spare) = self.settle().await?;
        spare.clear();
        let full = std::mem::replace(&mut self.filling, spare);
        self.written += full.filled().len() as u64;
        self.previous = Some(Previous::Writing(tokio::task::spawn_blocking(move || {
            (&file).write_all(full.filled())?;
            Ok((file, full))
        })));
        Ok(())
    }

    /// Waits for the writes in flight; what is left to write is the
    /// returned tail's.
    pub(super) async fn finish(mut self) -> std::io::Result<DirectTail> {
        let (file, _spare) = self.settle().await?;
        Ok(DirectTail {
            file,
            last: self.filling,
            written: self.written,
            alignment: self.alignment,
        })
    }
}

/// The last, partly filled buffer of a direct-written file.
pub(super) struct DirectTail {
    file: std::fs::File,
    last: AlignedBuffer,
    written: u64,
    alignment: usize,
}

impl DirectTail {
    /// Writes the last bytes (blocking) and returns the file holding
    /// exactly the object's bytes, not yet synced. The last write is
    /// padded to the alignment and the padding cut off again.
    pub(super) fn write(mut self) -> std::io::Result<std::fs::File> {
        let tail = self.last.filled().len() as u64;
        if tail > 0 {
            (&self.file).write_all(self.last.padded(self.alignment))?;
            self.file.set_len(self.written + tail)?;
        }
        Ok(self.file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct I/O where the test's temporary directory allows it; under
    /// `CI=true` its absence is a failure (CI's disk is ext4).
    fn direct_io(dir: &Path) -> Option<DirectIo> {
        match DirectIo::probe(dir) {
            Ok(io) => Some(io),
            Err(e) if artifactstore_core::flag::in_ci() => {
                panic!("direct I/O unavailable in {}: {e}", dir.display())
            }
            Err(e) => {
                eprintln!("skipped: direct I/O unavailable in {}: {e}", dir.display());
                None
            }
        }
    }

    #[test]
    fn buffers_start_aligned_and_pad_with_zeros() {
        for alignment in [512, 4096, MAX_ALIGNMENT] {
            let mut buffer = AlignedBuffer::new(4 * alignment, alignment);
            assert_eq!(buffer.filled().as_ptr().addr() % alignment, 0);
            assert_eq!(buffer.fill_from(&[9; 10]), 10);
            assert_eq!(buffer.padded(alignment).len(), alignment);
            assert!(buffer.padded(alignment)[10..].iter().all(|&b| b == 0));
            let rest = vec![5u8; 5 * alignment];
            assert_eq!(buffer.fill_from(&rest), 4 * alignment - 10);
            assert!(buffer.is_full());
            assert_eq!(buffer.padded(alignment).len(), 4 * alignment);
        }
    }

    #[tokio::test]
    async fn every_byte_arrives_whatever_the_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let Some(io) = direct_io(dir.path()) else {
            return;
        };
        for size in [
            1,
            io.alignment - 1,
            io.alignment,
            DIRECT_WRITE_BYTES,
            DIRECT_WRITE_BYTES + 1,
            2 * DIRECT_WRITE_BYTES + 12_345,
        ] {
            let bytes: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let mut writes = DirectWrites::new(io.create(dir.path()).unwrap(), io);
            // Pieces of odd sizes, as sockets hand them over.
            for piece in bytes.chunks(100_003) {
                writes.write(piece).await.unwrap();
            }
            let file = writes.finish().await.unwrap().write().unwrap();
            let path = dir.path().join(format!("object-{size}"));
            crate::filesystem::unnamed::link(&file, &path).unwrap();
            assert_eq!(file.metadata().unwrap().len(), size as u64);
            assert!(
                std::fs::read(&path).unwrap() == bytes,
                "{size} bytes differ"
            );
        }
    }

    #[test]
    fn part_writes_reuse_kept_buffers_and_write_only_their_own_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let Some(io) = direct_io(dir.path()) else {
            return;
        };
        let path = dir.path().join("part");
        std::fs::File::create(&path).unwrap();
        let spares = SpareBuffers::default();
        let kept = || spares.0.lock().unwrap().len();

        // A part of a buffer and a half fills the buffer with 0xAA.
        let first = vec![0xAAu8; DIRECT_WRITE_BYTES + DIRECT_WRITE_BYTES / 2];
        io.write_at(&path, 0, &[&first[..]], &spares).unwrap();
        assert_eq!(kept(), 1);

        // The next, in odd pieces, reuses that buffer and writes only its
        // own bytes.
        let second: Vec<u8> = (0..3 * io.alignment).map(|i| (i % 251) as u8).collect();
        let pieces: Vec<&[u8]> = second.chunks(1_001).collect();
        io.write_at(&path, io.alignment as u64, &pieces, &spares)
            .unwrap();
        assert_eq!(kept(), 1, "the kept buffer was not reused");
        let on_disk = std::fs::read(&path).unwrap();
        assert_eq!(on_disk.len(), first.len());
        assert!(on_disk[..io.alignment].iter().all(|&b| b == 0xAA));
        assert!(on_disk[io.alignment..4 * io.alignment] == second[..]);
        assert!(on_disk[4 * io.alignment..].iter().all(|&b| b == 0xAA));

        // No more than SPARE_BUFFERS_KEPT are kept, however many were out.
        let out: Vec<AlignedBuffer> = (0..SPARE_BUFFERS_KEPT + 3)
            .map(|_| spares.take(io.alignment))
            .collect();
        assert_eq!(kept(), 0);
        out.into_iter().for_each(|buffer| spares.give_back(buffer));
        assert_eq!(kept(), SPARE_BUFFERS_KEPT);
        // A kept buffer of another size is not handed out for a part.
        let taken: Vec<AlignedBuffer> = (0..SPARE_BUFFERS_KEPT)
            .map(|_| spares.take(io.alignment))
            .collect();
        assert_eq!(kept(), 0);
        drop(taken);
        spares.give_back(AlignedBuffer::new(io.alignment, io.alignment));
        assert_eq!(kept(), 1);
        assert!(spares
            .take(io.alignment)
            .fits(DIRECT_WRITE_BYTES, io.alignment));
        assert_eq!(kept(), 0);
    }
}
