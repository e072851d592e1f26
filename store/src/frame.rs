//! Record framing in a segment file: `length:u32 crc:u32 kind:u8 payload`, little-endian;
//! `length` counts `kind` and `payload`, `crc` is the CRC32C of the same bytes.
//!
//! Reading a file back tells three things apart: good frames; a torn tail (the last frame cut
//! short by a crash: the file ends inside it); and damage (a frame that fails its checksum, or
//! claims an impossible length, with more of the file after it). A crash tears at most the
//! tail; damage in the middle is the disk's doing and is never passed over silently.

/// Bytes before a frame's kind: length and checksum.
pub const HEADER: usize = 8;

/// The largest frame accepted on reading: a message body is at most what a client may send
/// (RabbitMQ's limit is 512 MiB), plus its names and properties.
pub const MAX_FRAME: usize = 600 << 20;

/// Appends one frame: `kind`, then whatever `payload` writes.
pub fn append(out: &mut Vec<u8>, kind: u8, payload: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    out.push(kind);
    payload(out);
    let body = &out[start + HEADER..];
    let len = body.len() as u32;
    let crc = crc32c::crc32c(body);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// What reading at an offset found.
#[derive(Debug, PartialEq, Eq)]
pub enum Read<'a> {
    /// A good frame, and the offset after it.
    Frame {
        kind: u8,
        payload: &'a [u8],
        next: usize,
    },
    /// The end of the file.
    End,
    /// The file ends inside this frame: a write the crash cut short.
    Torn,
    /// A frame that is wrong with more file after it.
    Damaged,
}

/// Reads the frame at `at` in `data` (a whole file).
pub fn read(data: &[u8], at: usize) -> Read<'_> {
    let rest = &data[at.min(data.len())..];
    if rest.is_empty() {
        return Read::End;
    }
    if rest.len() < HEADER + 1 {
        return Read::Torn;
    }
    let len = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
    let plausible = len != 0 && len <= MAX_FRAME;
    if plausible && rest.len() < HEADER + len {
        // The file ends inside the frame: the write the crash cut short.
        return Read::Torn;
    }
    if !plausible || crc32c::crc32c(&rest[HEADER..HEADER + len]) != crc {
        // Zeros or garbage where the last write went are torn too: nothing good follows them.
        // A good frame after a bad one means the middle of the file is damaged. (A bad
        // checksum is searched past from the frame's end, so a frame-shaped message body
        // inside it cannot pass for one.)
        let after = if plausible { at + HEADER + len } else { at + 1 };
        return if next_good(data, after).is_some() {
            Read::Damaged
        } else {
            Read::Torn
        };
    }
    let body = &rest[HEADER..HEADER + len];
    Read::Frame {
        kind: body[0],
        payload: &body[1..],
        next: at + HEADER + len,
    }
}

/// The first offset at or after `from` where a good frame starts (to skip damage, by hand).
pub fn next_good(data: &[u8], from: usize) -> Option<usize> {
    (from..data.len().saturating_sub(HEADER)).find(|&at| {
        let rest = &data[at..];
        let len = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
        if len == 0 || len > MAX_FRAME || rest.len() < HEADER + len {
            return false;
        }
        let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
        crc32c::crc32c(&rest[HEADER..HEADER + len]) == crc
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..n {
            append(&mut out, 7, |o| {
                o.extend_from_slice(format!("record {i}").as_bytes())
            });
        }
        out
    }

    fn read_all(data: &[u8]) -> (Vec<Vec<u8>>, Read<'_>) {
        let mut at = 0;
        let mut got = Vec::new();
        loop {
            match read(data, at) {
                Read::Frame {
                    payload,
                    next,
                    kind,
                } => {
                    assert_eq!(kind, 7);
                    got.push(payload.to_vec());
                    at = next;
                }
                other => return (got, other),
            }
        }
    }

    #[test]
    fn frames_read_back_in_order() {
        let data = frames(3);
        let (got, end) = read_all(&data);
        assert_eq!(
            got,
            [
                b"record 0".to_vec(),
                b"record 1".to_vec(),
                b"record 2".to_vec()
            ]
        );
        assert_eq!(end, Read::End);
    }

    #[test]
    fn a_file_cut_anywhere_in_its_last_frame_is_torn_not_damaged() {
        let data = frames(3);
        let last = frames(2).len();
        for cut in last + 1..data.len() {
            let (got, end) = read_all(&data[..cut]);
            assert_eq!(got.len(), 2, "cut at {cut}");
            assert_eq!(end, Read::Torn, "cut at {cut}");
        }
    }

    #[test]
    fn a_last_frame_with_garbage_or_zeros_is_torn() {
        let mut data = frames(2);
        let n = data.len();
        data[n - 3] ^= 0xff; // the last frame's bytes did not all reach the disk
        assert_eq!(read_all(&data), (vec![b"record 0".to_vec()], Read::Torn));
        let mut data = frames(2);
        data.extend_from_slice(&[0; 64]); // space the file system had allocated
        assert_eq!(read_all(&data).1, Read::Torn);
    }

    #[test]
    fn a_flipped_byte_in_the_middle_is_damage_and_can_be_skipped() {
        let mut data = frames(4);
        let second = frames(1).len();
        data[second + HEADER + 3] ^= 0x01;
        let (got, end) = read_all(&data);
        assert_eq!(got.len(), 1);
        assert_eq!(end, Read::Damaged);
        let resume = next_good(&data, second + 1).expect("a good frame after the damage");
        assert_eq!(resume, 2 * second);
        let (rest, end) = read_all(&data[resume..]);
        assert_eq!(rest.len(), 2);
        assert_eq!(end, Read::End);
    }

    #[test]
    fn a_damaged_length_in_the_middle_is_damage() {
        let mut data = frames(3);
        let second = frames(1).len();
        data[second..second + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(read_all(&data).1, Read::Damaged);
    }
}
