//! Content digests: the [`Digest`] newtype (sha256 only, validated on parse), streaming hashers
//! that hash whatever passes through them, and the OCI chain id.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

/// A sha256 content digest, shown as `sha256:<64 lowercase hex>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The algorithm prefix, with its colon.
    pub const PREFIX: &'static str = "sha256:";

    /// The digest of `data`.
    pub fn of(data: &[u8]) -> Digest {
        Digest(Sha256::digest(data).into())
    }

    /// Wraps raw digest bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Digest {
        Digest(bytes)
    }

    /// The raw digest bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64 lowercase hex digits, without the algorithm (the file name in the store).
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses bare lowercase hex (as in `blobs/sha256/<hex>` or `layers/<hex>`).
    pub fn from_hex(s: &str) -> Result<Digest> {
        let bad = |reason| Error::InvalidDigest {
            input: s.to_string(),
            reason,
        };
        if s.len() != 64 {
            return Err(bad("expected 64 hex digits"));
        }
        if !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(bad("expected lowercase hex digits"));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| bad("expected lowercase hex digits"))?;
        Ok(Digest(out))
    }

    /// Parses `sha256:<hex>`; any other algorithm is refused.
    pub fn parse(s: &str) -> Result<Digest> {
        match s.split_once(':') {
            Some(("sha256", hex)) => Digest::from_hex(hex).map_err(|_| Error::InvalidDigest {
                input: s.to_string(),
                reason: "expected 64 lowercase hex digits after sha256:",
            }),
            Some(_) => Err(Error::InvalidDigest {
                input: s.to_string(),
                reason: "unsupported algorithm (only sha256)",
            }),
            None => Err(Error::InvalidDigest {
                input: s.to_string(),
                reason: "missing algorithm prefix",
            }),
        }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", Digest::PREFIX, self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Digest {
    type Err = Error;
    fn from_str(s: &str) -> Result<Digest> {
        Digest::parse(s)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Digest, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// An incremental sha256 with a byte count.
#[derive(Clone, Default)]
pub struct Hasher {
    state: Sha256,
    len: u64,
}

impl Hasher {
    /// A fresh hasher.
    pub fn new() -> Hasher {
        Hasher::default()
    }

    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.state.update(data);
        self.len += data.len() as u64;
    }

    /// Bytes fed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when nothing was fed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The digest of everything fed so far (the hasher stays usable).
    pub fn digest(&self) -> Digest {
        Digest(self.state.clone().finalize().into())
    }
}

/// A reader that hashes every byte read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Hasher::new(),
        }
    }

    /// The digest of the bytes read so far.
    pub fn digest(&self) -> Digest {
        self.hasher.digest()
    }

    /// The number of bytes read so far.
    pub fn byte_count(&self) -> u64 {
        self.hasher.len()
    }

    /// Reads the rest of the stream (hashing it) and returns digest and total length.
    pub fn drain(&mut self) -> io::Result<(Digest, u64)> {
        io::copy(self, &mut io::sink())?;
        Ok((self.digest(), self.byte_count()))
    }

    /// The wrapped reader.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// A writer that hashes every byte written through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Hasher::new(),
        }
    }

    /// The digest of the bytes written so far.
    pub fn digest(&self) -> Digest {
        self.hasher.digest()
    }

    /// The number of bytes written so far.
    pub fn byte_count(&self) -> u64 {
        self.hasher.len()
    }

    /// The wrapped writer, by reference.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// The wrapped writer.
    pub fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The chain id of the next layer on top of `parent` (None for the bottom layer).
pub fn chain_next(parent: Option<&Digest>, diff_id: &Digest) -> Digest {
    match parent {
        None => *diff_id,
        Some(p) => Digest::of(format!("{p} {diff_id}").as_bytes()),
    }
}

/// The OCI chain id of a stack of layers given bottom-first by diff id:
/// chain(L0) = diff(L0); chain(L0..n) = sha256(chain(L0..n-1) + " " + diff(Ln)).
/// None for an empty stack.
pub fn chain_id(diff_ids: &[Digest]) -> Option<Digest> {
    let (first, rest) = diff_ids.split_first()?;
    Some(rest.iter().fold(*first, |c, d| chain_next(Some(&c), d)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const ABC: &str = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn known_vectors() {
        assert_eq!(Digest::of(b"").to_string(), EMPTY);
        assert_eq!(Digest::of(b"abc").to_string(), ABC);
    }

    #[test]
    fn parse_and_display_round_trip() {
        let d = Digest::parse(ABC).unwrap();
        assert_eq!(d.to_string(), ABC);
        assert_eq!(ABC.parse::<Digest>().unwrap(), d);
        assert_eq!(Digest::from_hex(&d.hex()).unwrap(), d);
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, format!("\"{ABC}\""));
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
    }

    #[test]
    fn parse_rejects_bad_input() {
        for bad in [
            "",
            "sha256:",
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            "sha512:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            "sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD",
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a",
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015adx",
            "sha256:zz7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        ] {
            let err = Digest::parse(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidDigest { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn hashing_reader_and_writer() {
        let mut r = HashingReader::new(&b"abc"[..]);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(r.digest().to_string(), ABC);
        assert_eq!(r.byte_count(), 3);
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"ab").unwrap();
        w.write_all(b"c").unwrap();
        assert_eq!(w.digest().to_string(), ABC);
        assert_eq!(w.into_inner(), b"abc");
    }

    #[test]
    fn chain_ids() {
        let e = Digest::parse(EMPTY).unwrap();
        let a = Digest::parse(ABC).unwrap();
        assert_eq!(chain_id(&[]), None);
        assert_eq!(chain_id(&[e]), Some(e));
        // Vectors computed independently with `printf 'sha256:.. sha256:..' | sha256sum`.
        let c2 = "sha256:a893da35bd22286079f2f3931516d3423eb9b4945f2379e0f8a501ec3d665dd6";
        let c3 = "sha256:c7aee1adee42d4db4910137e5f81f051269d58787a1f676ee50078fd0c689280";
        assert_eq!(chain_id(&[e, a]).unwrap().to_string(), c2);
        assert_eq!(chain_id(&[e, a, e]).unwrap().to_string(), c3);
        assert_eq!(
            chain_next(Some(&chain_id(&[e, a]).unwrap()), &e).to_string(),
            c3
        );
    }
}
