//! Byte layout of segment files and of the `ack` file, and the scanner that
//! walks a segment image and classifies every byte of it.
//!
//! Pure functions on byte slices: recovery at open, the runtime re-scan after a
//! failed checksum and the tests all share this one definition of "a valid
//! record", so they cannot disagree about where damage starts and ends.

/// First 8 bytes of every segment file: magic `EMSPOOL` and format version 1.
pub const SEGMENT_MAGIC: [u8; 8] = *b"EMSPOOL\x01";
/// Length of the segment header.
pub const SEGMENT_HEADER_LEN: u64 = SEGMENT_MAGIC.len() as u64;
/// Length of a record header: `len: u32 LE` then `crc: u32 LE`.
pub const RECORD_HEADER_LEN: usize = 8;
/// Largest payload a record may carry (64 MiB). Also bounds how far a corrupt
/// length field can make the scanner look.
pub const MAX_RECORD_LEN: usize = 64 << 20;
/// Set in the length field of a padding record: a damaged region that recovery
/// has overwritten with a valid header so that it is skipped, and counted,
/// only once. Readers skip padding; it is never delivered.
pub const PAD_FLAG: u32 = 0x8000_0000;

/// First 8 bytes of the `ack` file: magic `EMSPACK` and format version 1.
pub const ACK_MAGIC: [u8; 8] = *b"EMSPACK\x01";
/// Exact size of the `ack` file: magic, segment id, offset, crc32c.
pub const ACK_FILE_LEN: usize = 28;

/// Checksum stored in a record header: CRC32C over the 4 length bytes and then
/// the payload. Covering the length means an all-zero header (what a file
/// system may leave after a power failure) is never a valid empty record.
pub fn record_crc(len_field: u32, payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&len_field.to_le_bytes()), payload)
}

/// The 8-byte header for a data record carrying `payload`.
/// The caller has checked `payload.len() <= MAX_RECORD_LEN`.
pub fn record_header(payload: &[u8]) -> [u8; RECORD_HEADER_LEN] {
    let len = payload.len() as u32;
    let mut h = [0u8; RECORD_HEADER_LEN];
    h[..4].copy_from_slice(&len.to_le_bytes());
    h[4..].copy_from_slice(&record_crc(len, payload).to_le_bytes());
    h
}

/// The 8-byte header that turns `region` (header bytes included, at least 8
/// long) into a padding record, keeping the damaged bytes after it as they are.
pub fn pad_header(region: &[u8]) -> Option<[u8; RECORD_HEADER_LEN]> {
    let body = region.get(RECORD_HEADER_LEN..)?;
    let len = u32::try_from(body.len()).ok()? | PAD_FLAG;
    let mut h = [0u8; RECORD_HEADER_LEN];
    h[..4].copy_from_slice(&len.to_le_bytes());
    h[4..].copy_from_slice(&record_crc(len, body).to_le_bytes());
    Some(h)
}

/// What a valid record header announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Payload length (padding flag removed).
    pub len: usize,
    /// Whether this is padding rather than data.
    pub pad: bool,
}

/// Splits a raw length field into payload length and padding flag, or `None`
/// when the length is implausible.
pub fn decode_len(field: u32) -> Option<Frame> {
    let len = (field & !PAD_FLAG) as usize;
    (len <= MAX_RECORD_LEN).then_some(Frame {
        len,
        pad: field & PAD_FLAG != 0,
    })
}

/// Reads the two header fields at the start of `bytes` (at least 8 long).
pub fn header_fields(bytes: &[u8]) -> Option<(u32, u32)> {
    let len = u32::from_le_bytes(bytes.get(0..4)?.try_into().ok()?);
    let crc = u32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?);
    Some((len, crc))
}

/// Checks the record starting at `pos`: complete header, plausible length,
/// payload inside `buf`, checksum matching. Returns its frame and end offset.
pub fn valid_record_at(buf: &[u8], pos: usize) -> Option<(Frame, usize)> {
    let (field, crc) = header_fields(buf.get(pos..)?)?;
    let frame = decode_len(field)?;
    let start = pos + RECORD_HEADER_LEN;
    let end = start.checked_add(frame.len)?;
    let payload = buf.get(start..end)?;
    (record_crc(field, payload) == crc).then_some((frame, end))
}

/// One classified stretch of a segment image, offsets relative to the slice
/// handed to [`Scanner::new`] plus its `base`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item {
    /// A valid data record `[start, end)`, header included.
    Record {
        /// Offset of the record header.
        start: u64,
        /// Offset just after the payload.
        end: u64,
    },
    /// A valid padding record: skipped, not delivered, not counted.
    Pad {
        /// Offset of the padding header.
        start: u64,
        /// Offset just after it.
        end: u64,
    },
    /// Damaged bytes followed by a valid record: skipped.
    Damaged {
        /// First damaged byte (where a record should have started).
        start: u64,
        /// Where the next valid record starts.
        end: u64,
    },
    /// Bytes at the end that are not a complete valid record and are followed
    /// by nothing valid: a torn or corrupt tail. Always the last item.
    Torn {
        /// First byte of the tail.
        start: u64,
        /// End of the image.
        end: u64,
    },
}

/// Walks a segment image (or a suffix of one that starts at a record
/// boundary) and yields every record, padding, damaged region and torn tail.
pub struct Scanner<'a> {
    buf: &'a [u8],
    base: u64,
    pos: usize,
}

impl<'a> Scanner<'a> {
    /// Scans `buf`, whose first byte is at file offset `base` and is expected
    /// to be a record boundary.
    pub fn new(buf: &'a [u8], base: u64) -> Self {
        Scanner { buf, base, pos: 0 }
    }

    fn abs(&self, pos: usize) -> u64 {
        self.base + pos as u64
    }

    /// Next offset after a bad record at `pos` where a valid record starts.
    fn resync(&self, pos: usize) -> Option<usize> {
        // Fast path: only the payload was damaged, the length is intact, and
        // the next record follows where the length says. Then exactly one
        // record is lost, even if its damaged payload happened to contain
        // bytes that look like a record.
        if let Some((field, _)) = header_fields(&self.buf[pos..])
            && let Some(frame) = decode_len(field)
        {
            let next = pos + RECORD_HEADER_LEN + frame.len;
            if next < self.buf.len() && valid_record_at(self.buf, next).is_some() {
                return Some(next);
            }
        }
        (pos + 1..self.buf.len()).find(|&q| valid_record_at(self.buf, q).is_some())
    }
}

impl Iterator for Scanner<'_> {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        let pos = self.pos;
        if pos >= self.buf.len() {
            return None;
        }
        if let Some((frame, end)) = valid_record_at(self.buf, pos) {
            self.pos = end;
            let (start, end) = (self.abs(pos), self.abs(end));
            return Some(if frame.pad {
                Item::Pad { start, end }
            } else {
                Item::Record { start, end }
            });
        }
        if let Some(next) = self.resync(pos) {
            self.pos = next;
            Some(Item::Damaged {
                start: self.abs(pos),
                end: self.abs(next),
            })
        } else {
            self.pos = self.buf.len();
            Some(Item::Torn {
                start: self.abs(pos),
                end: self.abs(self.buf.len()),
            })
        }
    }
}

/// The bytes of an `ack` file naming position (`segment`, `offset`).
pub fn encode_ack(segment: u64, offset: u64) -> [u8; ACK_FILE_LEN] {
    let mut b = [0u8; ACK_FILE_LEN];
    b[..8].copy_from_slice(&ACK_MAGIC);
    b[8..16].copy_from_slice(&segment.to_le_bytes());
    b[16..24].copy_from_slice(&offset.to_le_bytes());
    let crc = crc32c::crc32c(&b[..24]);
    b[24..].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Parses an `ack` file; `None` when its size, magic or checksum is wrong.
pub fn decode_ack(bytes: &[u8]) -> Option<(u64, u64)> {
    if bytes.len() != ACK_FILE_LEN || bytes[..8] != ACK_MAGIC {
        return None;
    }
    let crc = u32::from_le_bytes(bytes[24..28].try_into().ok()?);
    if crc32c::crc32c(&bytes[..24]) != crc {
        return None;
    }
    let segment = u64::from_le_bytes(bytes[8..16].try_into().ok()?);
    let offset = u64::from_le_bytes(bytes[16..24].try_into().ok()?);
    Some((segment, offset))
}

/// File name of segment `id`: 20 zero-padded digits, so names sort like ids.
pub fn segment_file_name(id: u64) -> String {
    format!("{id:020}.seg")
}

/// The id in a segment file name, or `None` for any other file.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(payloads: &[&[u8]]) -> (Vec<u8>, Vec<(u64, u64)>) {
        let mut buf = Vec::new();
        let mut spans = Vec::new();
        for p in payloads {
            let start = buf.len() as u64;
            buf.extend_from_slice(&record_header(p));
            buf.extend_from_slice(p);
            spans.push((start, buf.len() as u64));
        }
        (buf, spans)
    }

    fn records(items: &[Item]) -> Vec<(u64, u64)> {
        items
            .iter()
            .filter_map(|i| match *i {
                Item::Record { start, end } => Some((start, end)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn clean_image_yields_every_record() {
        let (buf, spans) = image(&[b"a", b"", b"hello world"]);
        let items: Vec<Item> = Scanner::new(&buf, 8).collect();
        let shifted: Vec<(u64, u64)> = spans.iter().map(|(s, e)| (s + 8, e + 8)).collect();
        assert_eq!(records(&items), shifted);
        assert_eq!(items.len(), 3);
    }

    #[test]
    fn zero_header_is_not_an_empty_record() {
        assert_eq!(valid_record_at(&[0u8; 8], 0), None);
        let items: Vec<Item> = Scanner::new(&[0u8; 20], 0).collect();
        assert_eq!(items, vec![Item::Torn { start: 0, end: 20 }]);
    }

    #[test]
    fn torn_tail_mid_header_and_mid_payload() {
        let (buf, spans) = image(&[b"first", b"second"]);
        let cut = &buf[..spans[1].0 as usize + 5];
        let items: Vec<Item> = Scanner::new(cut, 0).collect();
        assert_eq!(
            items,
            vec![
                Item::Record { start: 0, end: 13 },
                Item::Torn { start: 13, end: 18 }
            ]
        );
        let cut = &buf[..buf.len() - 1];
        let items: Vec<Item> = Scanner::new(cut, 0).collect();
        assert_eq!(items[1], Item::Torn { start: 13, end: 26 });
    }

    #[test]
    fn flipped_payload_byte_skips_exactly_one_record() {
        let (mut buf, spans) = image(&[b"one", b"two", b"three"]);
        buf[spans[1].0 as usize + 9] ^= 0x40;
        let items: Vec<Item> = Scanner::new(&buf, 0).collect();
        assert_eq!(
            items,
            vec![
                Item::Record {
                    start: spans[0].0,
                    end: spans[0].1
                },
                Item::Damaged {
                    start: spans[1].0,
                    end: spans[1].1
                },
                Item::Record {
                    start: spans[2].0,
                    end: spans[2].1
                },
            ]
        );
    }

    #[test]
    fn garbage_length_resyncs_on_the_next_valid_record() {
        let (mut buf, spans) = image(&[b"one", b"two", b"three"]);
        buf[spans[1].0 as usize..spans[1].0 as usize + 4].copy_from_slice(&[0xff; 4]);
        let items: Vec<Item> = Scanner::new(&buf, 0).collect();
        assert_eq!(
            items[1],
            Item::Damaged {
                start: spans[1].0,
                end: spans[1].1
            }
        );
        assert_eq!(records(&items), vec![spans[0], spans[2]]);
    }

    #[test]
    fn bad_last_record_is_a_torn_tail() {
        let (mut buf, spans) = image(&[b"one", b"two"]);
        let last = buf.len() - 1;
        buf[last] ^= 1;
        let items: Vec<Item> = Scanner::new(&buf, 0).collect();
        assert_eq!(
            items[1],
            Item::Torn {
                start: spans[1].0,
                end: spans[1].1
            }
        );
    }

    #[test]
    fn padding_covers_a_damaged_region() {
        let (mut buf, spans) = image(&[b"one", b"two", b"three"]);
        let (s, e) = (spans[1].0 as usize, spans[1].1 as usize);
        buf[s + 9] ^= 0x40;
        let pad = pad_header(&buf[s..e]).unwrap();
        buf[s..s + 8].copy_from_slice(&pad);
        let items: Vec<Item> = Scanner::new(&buf, 0).collect();
        assert_eq!(
            items[1],
            Item::Pad {
                start: spans[1].0,
                end: spans[1].1
            }
        );
    }

    #[test]
    fn ack_file_round_trip_and_corruption() {
        let b = encode_ack(7, 4096);
        assert_eq!(decode_ack(&b), Some((7, 4096)));
        for i in 0..ACK_FILE_LEN {
            let mut c = b;
            c[i] ^= 0x10;
            assert_eq!(decode_ack(&c), None, "byte {i}");
        }
        assert_eq!(decode_ack(&b[..27]), None);
    }

    #[test]
    fn segment_names_sort_like_ids() {
        assert_eq!(segment_file_name(42), "00000000000000000042.seg");
        assert_eq!(
            parse_segment_file_name("00000000000000000042.seg"),
            Some(42)
        );
        assert_eq!(parse_segment_file_name("42.seg"), None);
        assert_eq!(parse_segment_file_name("0000000000000000004x.seg"), None);
        assert_eq!(parse_segment_file_name("ack"), None);
    }
}
