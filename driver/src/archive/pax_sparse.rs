//! PAX sparse files (GNU tar `--format=pax --sparse`, Go's archive/tar), which the `tar` crate
//! reads as a plain file named `GNUSparseFile.N/<name>` holding a sparse map and the data.
//! Formats 0.0 (`GNU.sparse.offset`/`numbytes` records), 0.1 (`GNU.sparse.map`) and 1.0 (the
//! map at the start of the data, in decimal lines padded to a 512-byte block) are read; the
//! real name comes from `GNU.sparse.name`, the size from `GNU.sparse.realsize`/`size`.
//! (GNU-format sparse entries, type `S`, are handled by the `tar` crate itself.)

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;

use super::entry::{EResult, header_err};
use crate::error::EntryError;

/// The sparse description of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Sparse {
    /// The file's real name (replaces the entry's `GNUSparseFile.N/…` path).
    pub name: Vec<u8>,
    /// The file's size, holes included.
    pub real_size: u64,
    /// (offset, length) of each data chunk; `None` for 1.0 (the map is in the data).
    map: Option<Vec<(u64, u64)>>,
}

fn bad(what: &str) -> EntryError {
    EntryError::Header {
        field: "GNU.sparse",
        source: io::Error::new(io::ErrorKind::InvalidData, what.to_string()),
    }
}

fn number(v: &[u8]) -> EResult<u64> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| bad("not a number"))
}

/// Pairs a flat list of numbers into (offset, length) chunks.
fn pairs(nums: &[u64]) -> EResult<Vec<(u64, u64)>> {
    if !nums.len().is_multiple_of(2) {
        return Err(bad("odd number of map values"));
    }
    Ok(nums.chunks(2).map(|c| (c[0], c[1])).collect())
}

/// The sparse description from the entry's PAX records, if it is a PAX sparse file.
pub(super) fn detect<R: Read>(entry: &mut tar::Entry<'_, R>) -> EResult<Option<Sparse>> {
    let Some(pax) = entry.pax_extensions().map_err(header_err("pax"))? else {
        return Ok(None);
    };
    let (mut name, mut size, mut major, mut map_text) = (None, None, None, None);
    let mut flat = Vec::new();
    for ext in pax {
        let ext = ext.map_err(header_err("pax"))?;
        let v = ext.value_bytes();
        match ext.key_bytes() {
            b"GNU.sparse.name" => name = Some(v.to_vec()),
            b"GNU.sparse.realsize" | b"GNU.sparse.size" => size = Some(number(v)?),
            b"GNU.sparse.major" => major = Some(number(v)?),
            b"GNU.sparse.map" => map_text = Some(v.to_vec()),
            b"GNU.sparse.offset" | b"GNU.sparse.numbytes" => flat.push(number(v)?),
            _ => {}
        }
    }
    let marked = name.is_some() || major.is_some() || map_text.is_some() || !flat.is_empty();
    let (Some(real_size), true) = (size, marked) else {
        return Ok(None);
    };
    let map = match (major, map_text) {
        (Some(1), _) => None,
        (_, Some(text)) => {
            let nums = text
                .split(|b| *b == b',')
                .filter(|s| !s.is_empty())
                .map(number)
                .collect::<EResult<Vec<u64>>>()?;
            Some(pairs(&nums)?)
        }
        _ => Some(pairs(&flat)?),
    };
    let name = match name {
        Some(n) => n,
        None => entry.path_bytes().into_owned(),
    };
    Ok(Some(Sparse {
        name,
        real_size,
        map,
    }))
}

/// Reads the 1.0 map from the start of the data: a count, then offset/length lines, padded
/// to a 512-byte block.
fn read_map(data: &mut impl Read) -> EResult<Vec<(u64, u64)>> {
    let mut text: Vec<u8> = Vec::new();
    let mut block = [0u8; 512];
    let mut nums: Vec<u64> = Vec::new();
    loop {
        data.read_exact(&mut block)
            .map_err(|_| bad("sparse map cut short"))?;
        text.extend_from_slice(&block);
        // Parse every complete line so far.
        nums.clear();
        let lines: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
        let complete = &lines[..lines.len() - 1];
        let mut want: Option<u64> = None;
        for l in complete {
            match want {
                None => want = Some(number(l)?),
                Some(n) if (nums.len() as u64) < 2 * n => nums.push(number(l)?),
                Some(_) => break,
            }
        }
        if let Some(n) = want {
            if n > 1 << 20 {
                return Err(bad("sparse map too large"));
            }
            if nums.len() as u64 == 2 * n {
                return pairs(&nums);
            }
        }
        if text.len() > (64 << 20) {
            return Err(bad("sparse map too large"));
        }
    }
}

/// Writes the entry's data into `file` at the map's offsets, leaving holes elsewhere.
pub(super) fn write(sparse: &Sparse, data: &mut impl Read, file: &File) -> EResult<()> {
    let map = match &sparse.map {
        Some(m) => m.clone(),
        None => read_map(data)?,
    };
    let mut end = 0u64;
    for (off, len) in &map {
        let last = off
            .checked_add(*len)
            .ok_or_else(|| bad("chunk overflows"))?;
        if *off < end || last > sparse.real_size {
            return Err(bad("chunks overlap or exceed the file size"));
        }
        end = last;
    }
    file.set_len(sparse.real_size)
        .map_err(|source| EntryError::Io {
            op: "set sparse file size",
            source,
        })?;
    let mut buf = vec![0u8; 128 * 1024];
    for (off, len) in map {
        let mut done = 0u64;
        while done < len {
            let n = (len - done).min(buf.len() as u64) as usize;
            data.read_exact(&mut buf[..n])
                .map_err(|source| EntryError::Io {
                    op: "read sparse data from layer stream",
                    source,
                })?;
            file.write_all_at(&buf[..n], off + done)
                .map_err(|source| EntryError::Io {
                    op: "write file",
                    source,
                })?;
            done += n as u64;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_1_0_map_is_read_from_the_data() {
        let mut data = b"2\n0\n3\n10\n2\n".to_vec();
        data.resize(512, 0);
        data.extend_from_slice(b"abcXY");
        let s = Sparse {
            name: b"f".to_vec(),
            real_size: 12,
            map: None,
        };
        let t = tempfile::tempfile().unwrap();
        write(&s, &mut &data[..], &t).unwrap();
        let mut out = Vec::new();
        (&t).read_to_end(&mut out).unwrap();
        assert_eq!(out, b"abc\0\0\0\0\0\0\0XY");
    }

    #[test]
    fn bad_maps_are_refused() {
        let t = tempfile::tempfile().unwrap();
        for (map, size) in [(vec![(0, 5), (3, 2)], 10), (vec![(8, 5)], 10)] {
            let s = Sparse {
                name: b"f".to_vec(),
                real_size: size,
                map: Some(map),
            };
            assert!(write(&s, &mut &[0u8; 64][..], &t).is_err());
        }
        let mut cut = b"3\n0\n1\n".to_vec();
        cut.resize(512, 0);
        let s = Sparse {
            name: b"f".to_vec(),
            real_size: 10,
            map: None,
        };
        assert!(write(&s, &mut &cut[..], &t).is_err());
    }
}
