//! SHA-256 digests: how modules are pinned (`sha256 = "…"`), named in the
//! content cache, and keyed in the compile cache.

use std::fmt;

use sha2::{Digest, Sha256};

/// The SHA-256 of a module's bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256Digest([u8; 32]);

impl Sha256Digest {
    pub fn of(bytes: &[u8]) -> Sha256Digest {
        Sha256Digest(Sha256::digest(bytes).into())
    }

    /// 64 hex digits, optionally after `sha256:` (how OCI writes digests).
    pub fn parse(text: &str) -> Result<Sha256Digest, String> {
        let hex = text.strip_prefix("sha256:").unwrap_or(text);
        if hex.len() != 64 {
            return Err(format!(
                "{text:?} is not a SHA-256 digest: expected 64 hex digits, got {}",
                hex.len()
            ));
        }
        let mut digest = [0u8; 32];
        for (byte, pair) in digest.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
            let nibble = |c: u8| (c as char).to_digit(16);
            match (nibble(pair[0]), nibble(pair[1])) {
                (Some(high), Some(low)) => *byte = (high * 16 + low) as u8,
                _ => return Err(format!("{text:?} is not a SHA-256 digest: not hexadecimal")),
            }
        }
        Ok(Sha256Digest(digest))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// `sha256:<hex>`, as OCI registries write it.
    pub fn oci(&self) -> String {
        format!("sha256:{self}")
    }
}

/// Lower-case hex, the form `sha256sum` prints.
impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{self}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_bad_text() {
        let digest = Sha256Digest::of(b"abc");
        let hex = digest.to_string();
        assert_eq!(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(Sha256Digest::parse(&hex), Ok(digest));
        assert_eq!(Sha256Digest::parse(&digest.oci()), Ok(digest));
        assert_eq!(Sha256Digest::parse(&hex.to_uppercase()), Ok(digest));
        assert!(Sha256Digest::parse(&hex[1..]).unwrap_err().contains("64 hex digits"));
        assert!(
            Sha256Digest::parse(&format!("{}g", &hex[1..]))
                .unwrap_err()
                .contains("not hexadecimal")
        );
        assert!(Sha256Digest::parse("sha512:00").is_err());
    }
}
