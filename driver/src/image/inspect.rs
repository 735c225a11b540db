//! The docker `inspect` shape of an image.

use super::*;

use serde::{Deserialize, Serialize};

use crate::refs::Reference;

// ---------------------------------------------------------------------------------------------
// inspect
// ---------------------------------------------------------------------------------------------

/// What the store knows about an image beyond its config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreFacts {
    pub repo_tags: Vec<Reference>,
    pub repo_digests: Vec<Reference>,
    pub parent: Option<String>,
    /// Sum of the layers' uncompressed sizes.
    pub size: u64,
    pub last_tag_time: Option<Timestamp>,
}

/// `inspect` output for an image, docker's field names and order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectImage {
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub parent: String,
    pub comment: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    pub author: String,
    pub config: Option<ContainerConfig>,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    pub os: String,
    pub size: u64,
    #[serde(rename = "RootFS")]
    pub root_fs: InspectRootFs,
    pub metadata: InspectMetadata,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectRootFs {
    #[serde(rename = "Type")]
    pub typ: String,
    pub layers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectMetadata {
    /// RFC 3339; `0001-01-01T00:00:00Z` when never tagged, as docker prints it.
    pub last_tag_time: String,
}

impl InspectImage {
    pub fn new(config: &ImageConfig, facts: &StoreFacts) -> InspectImage {
        InspectImage {
            id: config.image_id().to_string(),
            repo_tags: facts.repo_tags.iter().map(Reference::familiar).collect(),
            repo_digests: facts.repo_digests.iter().map(Reference::familiar).collect(),
            parent: facts.parent.clone().unwrap_or_default(),
            comment: config.comment().unwrap_or_default().to_string(),
            created: config.created().map(|c| {
                Timestamp::parse_rfc3339(c).map_or_else(|| c.to_string(), |t| t.to_rfc3339())
            }),
            author: config.author().unwrap_or_default().to_string(),
            config: config.config().cloned(),
            architecture: config.architecture(),
            variant: config.variant().map(str::to_string),
            os: config.os(),
            size: facts.size,
            root_fs: InspectRootFs {
                typ: "layers".into(),
                layers: config.diff_ids().to_vec(),
            },
            metadata: InspectMetadata {
                last_tag_time: facts
                    .last_tag_time
                    .unwrap_or(Timestamp::GO_ZERO)
                    .to_rfc3339(),
            },
        }
    }
}
