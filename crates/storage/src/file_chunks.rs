//! A local file read as a stream of chunks: how the filesystem backend
//! sends an object, and how a client sends a local file.

use std::io::Read;

use bytes::Bytes;
use futures::Stream;

/// The size of each chunk but the last.
pub const FILE_CHUNK_BYTES: usize = 1024 * 1024;

/// A chunk being read on the blocking pool; the file comes back with it.
type ChunkRead = tokio::task::JoinHandle<std::io::Result<(std::fs::File, Vec<u8>)>>;

/// Reads the next `len` bytes of `file` into a buffer of their own.
fn read_chunk(mut file: std::fs::File, len: u64) -> ChunkRead {
    tokio::task::spawn_blocking(move || {
        let mut chunk = Vec::with_capacity(usize::try_from(len).unwrap_or(FILE_CHUNK_BYTES));
        (&mut file).take(len).read_to_end(&mut chunk)?;
        if (chunk.len() as u64) < len {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the file is shorter than expected: it changed while it was read",
            ));
        }
        Ok((file, chunk))
    })
}

/// `length` bytes of `file` from its position, in chunks of
/// [`FILE_CHUNK_BYTES`]; a file shorter than that ends the stream with an
/// `UnexpectedEof` error, never with a short body that looks complete.
///
/// Each chunk is read on the blocking pool straight into the buffer that is
/// handed out (tokio's `File` reads into a buffer of its own, and a
/// `ReaderStream` copies it again), and the next chunk's read starts before
/// the current one is yielded, so reading the disk overlaps writing the
/// socket. A dropped stream leaves at most one chunk read for nothing.
pub fn file_chunks(
    file: std::fs::File,
    length: u64,
) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    let next_read = |file, remaining: u64| {
        (remaining > 0).then(|| read_chunk(file, remaining.min(FILE_CHUNK_BYTES as u64)))
    };
    let first = next_read(file, length);
    futures::stream::try_unfold((first, length), move |(pending, remaining)| async move {
        let Some(pending) = pending else {
            return Ok(None);
        };
        let (file, chunk) = pending.await.map_err(std::io::Error::other)??;
        let remaining = remaining - chunk.len() as u64;
        Ok(Some((
            Bytes::from(chunk),
            (next_read(file, remaining), remaining),
        )))
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use futures::StreamExt;

    use super::*;

    #[tokio::test]
    async fn chunks_cover_the_length_asked_for_and_a_short_file_fails() {
        let bytes: Vec<u8> = (0..FILE_CHUNK_BYTES * 5 / 2)
            .map(|i| (i % 251) as u8)
            .collect();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&bytes).unwrap();

        let read = |length| {
            let mut file = file.try_clone().unwrap();
            std::io::Seek::rewind(&mut file).unwrap();
            file_chunks(file, length)
        };
        let mut sizes = Vec::new();
        let mut all = Vec::new();
        let mut stream = std::pin::pin!(read(bytes.len() as u64));
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.unwrap();
            sizes.push(chunk.len());
            all.extend_from_slice(&chunk);
        }
        assert!(all == bytes, "the chunks differ from the file");
        assert_eq!(
            sizes,
            [FILE_CHUNK_BYTES, FILE_CHUNK_BYTES, FILE_CHUNK_BYTES / 2]
        );

        // Fewer bytes than the file holds: exactly those, nothing more.
        let mut stream = std::pin::pin!(read(10));
        let first = stream.next().await.unwrap().unwrap();
        assert_eq!(&first[..], &bytes[..10]);
        assert!(stream.next().await.is_none());

        let mut stream = std::pin::pin!(read(0));
        assert!(stream.next().await.is_none());

        // More than the file holds: an error, not a short body.
        let mut stream = std::pin::pin!(read(bytes.len() as u64 + 1));
        let mut failed = None;
        while let Some(chunk) = stream.next().await {
            if let Err(e) = chunk {
                failed = Some(e);
                break;
            }
        }
        assert_eq!(
            failed.map(|e| e.kind()),
            Some(std::io::ErrorKind::UnexpectedEof)
        );
    }
}
