//! Platforms (`os/arch[/variant]`) and choosing one entry of a manifest list / OCI index, the
//! way containerd's default matcher does for the common cases.

use std::fmt;

use super::error::RegistryError;

/// An image platform, normalised (`x86_64` → `amd64`, `aarch64` → `arm64`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

fn normalize_arch(arch: &str, variant: Option<&str>) -> (String, Option<String>) {
    let arch = arch.to_ascii_lowercase();
    let variant = variant
        .map(str::to_ascii_lowercase)
        .filter(|v| !v.is_empty());
    match arch.as_str() {
        "x86_64" | "x86-64" | "amd64" => ("amd64".into(), variant),
        "i386" | "i686" | "386" => ("386".into(), None),
        "aarch64" | "arm64" => {
            let v = variant.filter(|v| v != "v8" && v != "8");
            ("arm64".into(), v)
        }
        "armhf" => ("arm".into(), Some("v7".into())),
        "armel" => ("arm".into(), Some("v6".into())),
        "arm" => ("arm".into(), Some(variant.unwrap_or_else(|| "v7".into()))),
        _ => (arch, variant),
    }
}

impl Platform {
    /// A platform from its parts, normalised.
    pub fn new(os: &str, arch: &str, variant: Option<&str>) -> Platform {
        let (arch, variant) = normalize_arch(arch, variant);
        Platform {
            os: os.to_ascii_lowercase(),
            arch,
            variant,
        }
    }

    /// Parses `os/arch[/variant]`.
    pub fn parse(s: &str) -> Result<Platform, RegistryError> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => Ok(Platform::new(os, arch, None)),
            [os, arch, v] if !os.is_empty() && !arch.is_empty() && !v.is_empty() => {
                Ok(Platform::new(os, arch, Some(v)))
            }
            _ => Err(RegistryError::BadPlatform(s.to_string())),
        }
    }

    /// The platform this program runs on (linux/amd64 here).
    pub fn host() -> Platform {
        Platform::new(std::env::consts::OS, std::env::consts::ARCH, None)
    }

    /// True when an image for `other` runs here: same os and arch, and the variant when this
    /// platform names one.
    pub fn matches(&self, other: &Platform) -> bool {
        self.os == other.os
            && self.arch == other.arch
            && (self.variant.is_none() || self.variant == other.variant)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Index of the entry of a manifest list to pull for `wanted`: the first that matches, an
/// exact variant match preferred. Entries without a platform (or `unknown/unknown`, as
/// attestation manifests are marked) are never chosen.
pub fn select(entries: &[Option<Platform>], wanted: &Platform) -> Option<usize> {
    let candidates = || {
        entries
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.as_ref().map(|p| (i, p)))
            .filter(|(_, p)| wanted.matches(p))
    };
    candidates()
        .find(|(_, p)| p.variant == wanted.variant)
        .or_else(|| candidates().next())
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Option<Platform> {
        Some(Platform::parse(s).unwrap())
    }

    #[test]
    fn parse_and_normalise() {
        assert_eq!(
            Platform::parse("linux/x86_64").unwrap().to_string(),
            "linux/amd64"
        );
        assert_eq!(
            Platform::parse("linux/aarch64/v8").unwrap().to_string(),
            "linux/arm64"
        );
        assert_eq!(
            Platform::parse("linux/arm").unwrap().to_string(),
            "linux/arm/v7"
        );
        assert_eq!(
            Platform::parse("Linux/ARM64").unwrap().to_string(),
            "linux/arm64"
        );
        for bad in ["", "linux", "linux/", "/amd64", "a/b/c/d", "linux/arm/"] {
            assert!(Platform::parse(bad).is_err(), "{bad}");
        }
        if cfg!(all(target_os = "linux", target_arch = "x86_64")) {
            assert_eq!(Platform::host().to_string(), "linux/amd64");
        }
    }

    #[test]
    fn selection() {
        let list = vec![
            p("linux/arm/v6"),
            p("linux/arm/v7"),
            None,
            p("linux/arm64/v8"),
            p("linux/amd64"),
            Some(Platform::new("unknown", "unknown", None)),
            p("windows/amd64"),
        ];
        let w = |s: &str| Platform::parse(s).unwrap();
        assert_eq!(select(&list, &w("linux/amd64")), Some(4));
        assert_eq!(select(&list, &w("linux/arm64")), Some(3));
        assert_eq!(select(&list, &w("linux/arm/v7")), Some(1));
        assert_eq!(select(&list, &w("linux/arm/v6")), Some(0));
        assert_eq!(select(&list, &w("windows/amd64")), Some(6));
        assert_eq!(select(&list, &w("linux/s390x")), None);
        assert_eq!(select(&[], &w("linux/amd64")), None);
    }
}
