//! Layer tar streams: reading one into an overlay-format directory ([`tar_in`]) and writing an
//! overlay-format directory (an extracted layer or a container upper) as an OCI layer tar
//! ([`tar_out`]), translating whiteouts between the two forms.

mod entry;
pub mod limits;
mod pax_sparse;
pub mod tar_in;
pub mod tar_out;

use std::fmt;

/// Compression of a layer stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip (`application/vnd.oci.image.layer.v1.tar+gzip`).
    Gzip,
    /// zstd (`application/vnd.oci.image.layer.v1.tar+zstd`).
    Zstd,
}

impl Compression {
    /// Detects the compression from the first bytes of a stream (fewer than 4 is fine).
    pub fn detect(magic: &[u8]) -> Compression {
        if magic.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::None => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        })
    }
}

/// How whiteouts are represented in a layer directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WhiteoutForm {
    /// Kernel overlay form: char device 0:0, `trusted.overlay.opaque="y"`.
    #[default]
    Overlay,
    /// OCI form kept as files (`.wh.<name>`, `.wh..wh..opq`): used when the importer could not
    /// mknod or set trusted xattrs (unprivileged).
    Oci,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detect_magic() {
        assert_eq!(Compression::detect(&[0x1f, 0x8b, 8, 0]), Compression::Gzip);
        assert_eq!(
            Compression::detect(&[0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Zstd
        );
        assert_eq!(Compression::detect(b"etc/"), Compression::None);
        assert_eq!(Compression::detect(&[0x1f]), Compression::None);
        assert_eq!(Compression::detect(&[]), Compression::None);
    }
}
