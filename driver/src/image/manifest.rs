//! OCI/Docker manifests and indexes (parse with media-type checks, deterministic write) and
//! the docker-archive `manifest.json`.

use super::*;
use std::collections::BTreeMap;
use std::str::FromStr;

use oci_spec::image::{
    Descriptor, Digest as OciDigest, ImageIndex, ImageManifest, ImageManifestBuilder, MediaType,
    Platform,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::refs::{Reference, parse_normalized_named, validate_digest};

// ---------------------------------------------------------------------------------------------
// Manifests and indexes
// ---------------------------------------------------------------------------------------------

/// Which media types a built manifest uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestFlavor {
    /// `application/vnd.oci.image.manifest.v1+json` (what `save` and `push` write).
    Oci,
    /// `application/vnd.docker.distribution.manifest.v2+json`.
    DockerV2,
}

pub(crate) fn oci_digest(what: &'static str, d: &str) -> Result<OciDigest> {
    validate_digest(d).map_err(|_| ImageError::BadDigest {
        what,
        digest: d.to_string(),
    })?;
    OciDigest::from_str(d).map_err(|_| ImageError::BadDigest {
        what,
        digest: d.to_string(),
    })
}

/// Builds an image manifest from the config blob's and the layer blobs' digests and sizes.
#[derive(Debug, Clone)]
pub struct ManifestBuilder {
    flavor: ManifestFlavor,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

impl ManifestBuilder {
    pub fn new(flavor: ManifestFlavor, config_digest: &str, config_size: u64) -> Result<Self> {
        let mt = match flavor {
            ManifestFlavor::Oci => MediaType::ImageConfig,
            ManifestFlavor::DockerV2 => MediaType::Other(DOCKER_CONFIG_V1.into()),
        };
        let config = Descriptor::new(mt, config_size, oci_digest("config", config_digest)?);
        Ok(ManifestBuilder {
            flavor,
            config,
            layers: Vec::new(),
        })
    }

    /// Adds the next layer (bottom first).
    pub fn layer(mut self, digest: &str, size: u64, compression: LayerCompression) -> Result<Self> {
        use LayerCompression as C;
        let mt = match (self.flavor, compression) {
            (ManifestFlavor::Oci, C::None) => MediaType::ImageLayer,
            (ManifestFlavor::Oci, C::Gzip) => MediaType::ImageLayerGzip,
            (ManifestFlavor::Oci, C::Zstd) => MediaType::ImageLayerZstd,
            (ManifestFlavor::DockerV2, C::None) => MediaType::Other(DOCKER_LAYER_TAR.into()),
            (ManifestFlavor::DockerV2, C::Gzip) => MediaType::Other(DOCKER_LAYER_GZIP.into()),
            (ManifestFlavor::DockerV2, C::Zstd) => {
                return Err(ImageError::UnknownMediaType {
                    what: "docker v2 layer",
                    media_type: "zstd".into(),
                });
            }
        };
        self.layers
            .push(Descriptor::new(mt, size, oci_digest("layer", digest)?));
        Ok(self)
    }

    pub fn build(self) -> ImageManifest {
        let mt = match self.flavor {
            ManifestFlavor::Oci => MediaType::ImageManifest,
            ManifestFlavor::DockerV2 => MediaType::Other(DOCKER_MANIFEST_V2.into()),
        };
        ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(mt)
            .config(self.config)
            .layers(self.layers)
            .build()
            .expect("all required manifest fields are set")
    }
}

// Write-side mirrors of the oci-spec types: same field order as Go's ocispec structs,
// BTreeMap annotations.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DescriptorOut<'a> {
    media_type: String,
    digest: String,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    urls: Option<&'a Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<BTreeMap<&'a String, &'a String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform: Option<&'a Platform>,
    #[serde(skip_serializing_if = "Option::is_none")]
    artifact_type: Option<String>,
}

impl<'a> From<&'a Descriptor> for DescriptorOut<'a> {
    fn from(d: &'a Descriptor) -> Self {
        DescriptorOut {
            media_type: d.media_type().to_string(),
            digest: d.digest().to_string(),
            size: d.size(),
            urls: d.urls().as_ref(),
            annotations: d.annotations().as_ref().map(|a| a.iter().collect()),
            data: d.data().as_ref(),
            platform: d.platform().as_ref(),
            artifact_type: d.artifact_type().as_ref().map(|m| m.to_string()),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ManifestOut<'a> {
    schema_version: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    artifact_type: Option<String>,
    config: DescriptorOut<'a>,
    layers: Vec<DescriptorOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<DescriptorOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<BTreeMap<&'a String, &'a String>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct IndexOut<'a> {
    schema_version: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    artifact_type: Option<String>,
    manifests: Vec<DescriptorOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<DescriptorOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<BTreeMap<&'a String, &'a String>>,
}

/// Deterministic compact JSON of a manifest (its digest is the sha256 of these bytes).
pub fn manifest_to_bytes(m: &ImageManifest) -> Vec<u8> {
    let out = ManifestOut {
        schema_version: m.schema_version(),
        media_type: m.media_type().as_ref().map(|t| t.to_string()),
        artifact_type: m.artifact_type().as_ref().map(|t| t.to_string()),
        config: m.config().into(),
        layers: m.layers().iter().map(Into::into).collect(),
        subject: m.subject().as_ref().map(Into::into),
        annotations: m.annotations().as_ref().map(|a| a.iter().collect()),
    };
    serde_json::to_vec(&out).expect("serialising a manifest cannot fail")
}

/// Deterministic compact JSON of an index (`index.json`).
pub fn index_to_bytes(i: &ImageIndex) -> Vec<u8> {
    let out = IndexOut {
        schema_version: i.schema_version(),
        media_type: i.media_type().as_ref().map(|t| t.to_string()),
        artifact_type: i.artifact_type().as_ref().map(|t| t.to_string()),
        manifests: i.manifests().iter().map(Into::into).collect(),
        subject: i.subject().as_ref().map(Into::into),
        annotations: i.annotations().as_ref().map(|a| a.iter().collect()),
    };
    serde_json::to_vec(&out).expect("serialising an index cannot fail")
}

/// A manifest or an index, as found behind a digest or tag.
#[derive(Debug, Clone, PartialEq)]
pub enum ManifestOrIndex {
    Manifest(Box<ImageManifest>),
    Index(Box<ImageIndex>),
}

pub(crate) fn is_manifest_type(mt: &str) -> bool {
    mt == MediaType::ImageManifest.to_string() || mt == DOCKER_MANIFEST_V2
}
pub(crate) fn is_index_type(mt: &str) -> bool {
    mt == MediaType::ImageIndex.to_string() || mt == DOCKER_MANIFEST_LIST_V2
}

/// Parses manifest or index bytes. `media_type` is the type the blob was served or referenced
/// with, if known; the `mediaType` field inside wins when present. Schema1 and unknown types
/// are rejected, and so are configs and layers of unknown types.
pub fn parse_manifest_or_index(bytes: &[u8], media_type: Option<&str>) -> Result<ManifestOrIndex> {
    const WHAT: &str = "manifest";
    let v: Value =
        serde_json::from_slice(bytes).map_err(|source| ImageError::Json { what: WHAT, source })?;
    let inner = v.get("mediaType").and_then(Value::as_str);
    let mt = inner.or(media_type);
    if let Some(mt) = mt
        && (mt == DOCKER_MANIFEST_V1 || mt == DOCKER_MANIFEST_V1_SIGNED)
    {
        return Err(ImageError::Schema1 {
            media_type: mt.into(),
        });
    }
    match v.get("schemaVersion").and_then(Value::as_u64) {
        Some(2) => {}
        Some(1) => {
            return Err(ImageError::Schema1 {
                media_type: mt.unwrap_or(DOCKER_MANIFEST_V1_SIGNED).into(),
            });
        }
        Some(n) => return Err(ImageError::SchemaVersion(n)),
        None => {
            return Err(ImageError::MissingField {
                what: WHAT,
                field: "schemaVersion",
            });
        }
    }
    let index = match mt {
        Some(mt) if is_index_type(mt) => true,
        Some(mt) if is_manifest_type(mt) => false,
        Some(mt) => {
            return Err(ImageError::UnknownMediaType {
                what: "manifest",
                media_type: mt.into(),
            });
        }
        // OCI allows mediaType to be absent: tell by shape.
        None => v.get("manifests").is_some(),
    };
    if index {
        let idx: ImageIndex = serde_json::from_value(v).map_err(|source| ImageError::Json {
            what: "image index",
            source,
        })?;
        for d in idx.manifests() {
            let t = d.media_type().to_string();
            if !is_manifest_type(&t) && !is_index_type(&t) {
                return Err(ImageError::UnknownMediaType {
                    what: "index entry",
                    media_type: t,
                });
            }
        }
        Ok(ManifestOrIndex::Index(Box::new(idx)))
    } else {
        let m: ImageManifest =
            serde_json::from_value(v).map_err(|source| ImageError::Json { what: WHAT, source })?;
        let ct = m.config().media_type().to_string();
        if ct != MediaType::ImageConfig.to_string() && ct != DOCKER_CONFIG_V1 {
            return Err(ImageError::UnknownMediaType {
                what: "config",
                media_type: ct,
            });
        }
        for l in m.layers() {
            layer_compression(l.media_type())?;
        }
        Ok(ManifestOrIndex::Manifest(Box::new(m)))
    }
}

/// [`parse_manifest_or_index`] expecting an image manifest.
pub fn parse_manifest(bytes: &[u8]) -> Result<ImageManifest> {
    match parse_manifest_or_index(bytes, None)? {
        ManifestOrIndex::Manifest(m) => Ok(*m),
        ManifestOrIndex::Index(i) => Err(ImageError::WrongKind {
            expected: "an image manifest",
            found: "an image index",
            media_type: i
                .media_type()
                .as_ref()
                .map_or_else(|| MediaType::ImageIndex.to_string(), |t| t.to_string()),
        }),
    }
}

/// [`parse_manifest_or_index`] expecting an index (e.g. an OCI layout's `index.json`).
pub fn parse_index(bytes: &[u8]) -> Result<ImageIndex> {
    match parse_manifest_or_index(bytes, None)? {
        ManifestOrIndex::Index(i) => Ok(*i),
        ManifestOrIndex::Manifest(m) => Err(ImageError::WrongKind {
            expected: "an image index",
            found: "an image manifest",
            media_type: m
                .media_type()
                .as_ref()
                .map_or_else(|| MediaType::ImageManifest.to_string(), |t| t.to_string()),
        }),
    }
}

/// One manifest to list in an `index.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexEntry {
    pub manifest_digest: String,
    pub manifest_size: u64,
    pub media_type: MediaType,
    /// Adds `io.containerd.image.name` (full reference) and `org.opencontainers.image.ref.name`
    /// (the tag), as Docker 25+ `save` does.
    pub reference: Option<Reference>,
    pub platform: Option<Platform>,
}

/// Builds an OCI index (schemaVersion 2, OCI index media type) listing `entries` in order.
pub fn build_index(entries: &[IndexEntry]) -> Result<ImageIndex> {
    let mut manifests = Vec::with_capacity(entries.len());
    for e in entries {
        let mut d = Descriptor::new(
            e.media_type.clone(),
            e.manifest_size,
            oci_digest("index entry", &e.manifest_digest)?,
        );
        if let Some(r) = &e.reference {
            let mut ann = std::collections::HashMap::new();
            ann.insert(ANNOTATION_IMAGE_NAME.to_string(), r.to_string());
            if let Some(tag) = r.tag() {
                ann.insert(ANNOTATION_REF_NAME.to_string(), tag.to_string());
            }
            d.set_annotations(Some(ann));
        }
        d.set_platform(e.platform.clone());
        manifests.push(d);
    }
    let mut idx = ImageIndex::default();
    idx.set_schema_version(2);
    idx.set_media_type(Some(MediaType::ImageIndex));
    idx.set_manifests(manifests);
    Ok(idx)
}

/// What an index entry says its image is called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryName {
    /// A full reference (`io.containerd.image.name`, or a `ref.name` that is one).
    Reference(Reference),
    /// Only a tag (`ref.name: latest` in a plain OCI layout): the caller supplies the name.
    Tag(String),
    None,
}

/// The name of an index entry: `io.containerd.image.name` first, then
/// `org.opencontainers.image.ref.name` (a full reference or, per the OCI layout spec, a tag).
pub fn index_entry_name(d: &Descriptor) -> EntryName {
    let Some(ann) = d.annotations() else {
        return EntryName::None;
    };
    if let Some(r) = ann
        .get(ANNOTATION_IMAGE_NAME)
        .and_then(|n| parse_normalized_named(n).ok())
    {
        return EntryName::Reference(r);
    }
    match ann.get(ANNOTATION_REF_NAME) {
        Some(n) if n.contains(['/', '@', ':']) => match parse_normalized_named(n) {
            Ok(r) => EntryName::Reference(r),
            Err(_) => EntryName::None,
        },
        Some(n) if crate::refs::is_valid_tag(n) => EntryName::Tag(n.clone()),
        _ => EntryName::None,
    }
}

// ---------------------------------------------------------------------------------------------
// docker-archive manifest.json
// ---------------------------------------------------------------------------------------------

/// One entry of a docker-archive `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ArchiveManifestEntry {
    /// Path of the config in the archive (`blobs/sha256/<hex>`, legacy `<hex>.json`).
    pub config: String,
    /// Familiar `name:tag` strings; written as `null` when empty, as docker does.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        serialize_with = "empty_as_null"
    )]
    pub repo_tags: Vec<String>,
    /// Layer paths, bottom first (`blobs/sha256/<hex>`, legacy `<id>/layer.tar`).
    pub layers: Vec<String>,
    /// Foreign layers (diff ID → descriptor), written only when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer_sources: Option<BTreeMap<String, Value>>,
}

pub(crate) fn null_as_empty<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

pub(crate) fn empty_as_null<S: serde::Serializer>(v: &[String], s: S) -> Result<S::Ok, S::Error> {
    if v.is_empty() {
        s.serialize_none()
    } else {
        s.collect_seq(v)
    }
}

pub(crate) fn blob_path(what: &'static str, digest: &str) -> Result<String> {
    validate_digest(digest).map_err(|_| ImageError::BadDigest {
        what,
        digest: digest.into(),
    })?;
    Ok(format!("blobs/{}", digest.replacen(':', "/", 1)))
}

impl ArchiveManifestEntry {
    /// The entry Docker 25+ writes for an OCI-layout archive: paths `blobs/sha256/<hex>`.
    /// `repo_tags` are written in familiar form.
    pub fn new(
        config_digest: &str,
        repo_tags: &[Reference],
        layer_digests: &[String],
    ) -> Result<Self> {
        Ok(ArchiveManifestEntry {
            config: blob_path("config", config_digest)?,
            repo_tags: repo_tags.iter().map(Reference::familiar).collect(),
            layers: layer_digests
                .iter()
                .map(|d| blob_path("layer", d))
                .collect::<Result<_>>()?,
            layer_sources: None,
        })
    }

    /// The tags, normalised (`busybox:latest` → `docker.io/library/busybox:latest`); each must
    /// carry a tag, as docker load requires.
    pub fn references(&self) -> Result<Vec<Reference>> {
        self.repo_tags
            .iter()
            .map(|t| {
                let r = parse_normalized_named(t).map_err(|source| ImageError::ArchiveTag {
                    tag: t.clone(),
                    source,
                })?;
                if r.tag().is_none() || r.digest().is_some() {
                    return Err(ImageError::ArchiveTag {
                        tag: t.clone(),
                        source: crate::refs::RefError::InvalidTag(t.clone()),
                    });
                }
                Ok(r)
            })
            .collect()
    }
}

/// Serialises `manifest.json` (compact, entries in order).
pub fn archive_manifest_to_bytes(entries: &[ArchiveManifestEntry]) -> Vec<u8> {
    serde_json::to_vec(entries).expect("serialising manifest.json cannot fail")
}

/// Parses `manifest.json`, rejecting entries without a config and paths that are absolute or
/// climb out of the archive (`..`).
pub fn parse_archive_manifest(bytes: &[u8]) -> Result<Vec<ArchiveManifestEntry>> {
    let entries: Vec<ArchiveManifestEntry> =
        serde_json::from_slice(bytes).map_err(|source| ImageError::Json {
            what: "manifest.json",
            source,
        })?;
    for (index, e) in entries.iter().enumerate() {
        for p in std::iter::once(&e.config).chain(&e.layers) {
            if p.is_empty() || p.starts_with('/') || p.split('/').any(|s| s == "..") {
                return Err(ImageError::ArchiveEntry {
                    index,
                    problem: format!("unsafe or empty path {p:?}"),
                });
            }
        }
    }
    Ok(entries)
}
