use std::fmt;
use std::io::Read;
use std::path::Path;

/// The id of an artifact: a Merkle hash of its directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ArtifactId(pub [u8; 32]);

/// An action key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(pub [u8; 32]);

macro_rules! hex_id {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                const DIGITS: &[u8; 16] = b"0123456789abcdef";
                let mut out = [0u8; 64];
                for (i, b) in self.0.iter().enumerate() {
                    out[2 * i] = DIGITS[(b >> 4) as usize];
                    out[2 * i + 1] = DIGITS[(b & 15) as usize];
                }
                f.write_str(std::str::from_utf8(&out).expect("hex digits"))
            }
        }

        impl std::str::FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                if s.len() != 64 {
                    return Err(format!("`{s}` is not a 64-digit hex id"));
                }
                let mut out = [0u8; 32];
                for (i, o) in out.iter_mut().enumerate() {
                    *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| format!("`{s}` is not hex"))?;
                }
                Ok(Self(out))
            }
        }

        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_string())
            }
        }

        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
hex_id!(ArtifactId);
hex_id!(Key);

impl Key {
    /// The action key of canonical preimage bytes, domain-separated and versioned.
    pub fn of(preimage: &[u8]) -> Key {
        // `blake3::derive_key`, with the context's key derived once per process.
        static ACTION: std::sync::LazyLock<blake3::Hasher> =
            std::sync::LazyLock::new(|| blake3::Hasher::new_derive_key("labrun action v1"));
        Key(*ACTION.clone().update(preimage).finalize().as_bytes())
    }
}

/// Feeds everything `r` yields to `h`. Large inputs (`size_hint`: the expected length) are
/// hashed in 1 MiB chunks on every core (blake3 is a tree hash: the result is that of
/// feeding the bytes one by one); small ones through a small buffer, without the cost of
/// setting up a large one.
fn hash_reader(h: &mut blake3::Hasher, mut r: impl Read, size_hint: u64) -> std::io::Result<()> {
    const PARALLEL: u64 = 1 << 20;
    if size_hint < PARALLEL {
        let mut buf = [0u8; 16 << 10];
        loop {
            match r.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    h.update(&buf[..n]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
    let mut buf = vec![0u8; PARALLEL as usize];
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            match r.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if filled == 0 {
            return Ok(());
        }
        h.update_rayon(&buf[..filled]);
    }
}

/// A file's contents into `h`: large ones in parallel chunks, small ones in one pass.
pub fn hash_file(h: &mut blake3::Hasher, path: &Path) -> std::io::Result<()> {
    let f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    hash_reader(h, f, len)
}

/// The Merkle hash of a directory: entries sorted by name, each contributing its kind,
/// name and content hash (files) or subtree hash (directories). Symlinks and other
/// special files are refused: artifacts are plain files.
pub fn hash_dir(dir: &Path) -> std::io::Result<ArtifactId> {
    let mut names: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<Vec<_>, _>>()?;
    names.sort_by_key(|e| e.file_name());
    let mut h = blake3::Hasher::new_derive_key("labrun artifact v1");
    for e in names {
        let name = e.file_name();
        let name = name.as_encoded_bytes();
        let ft = e.file_type()?;
        let sub = if ft.is_dir() {
            h.update(b"d");
            hash_dir(&e.path())?.0
        } else if ft.is_file() {
            h.update(b"f");
            let mut fh = blake3::Hasher::new();
            hash_file(&mut fh, &e.path())?;
            *fh.finalize().as_bytes()
        } else {
            return Err(std::io::Error::other(format!("{} is not a plain file or directory", e.path().display())));
        };
        h.update(&(name.len() as u64).to_le_bytes());
        h.update(name);
        h.update(&sub);
    }
    Ok(ArtifactId(*h.finalize().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_chunked_hashing_match_plain_blake3() {
        assert_eq!(Key::of(b"preimage").0, blake3::derive_key("labrun action v1", b"preimage"));
        // Larger than one chunk, not a multiple of it.
        let data: Vec<u8> = (0..(3 << 20) + 12345).map(|i: u32| (i.wrapping_mul(2654435761) >> 24) as u8).collect();
        for hint in [0, data.len() as u64] {
            let mut h = blake3::Hasher::new();
            hash_reader(&mut h, &data[..], hint).unwrap();
            assert_eq!(h.finalize(), blake3::hash(&data));
        }
    }

    #[test]
    fn merkle_hash_sees_names_contents_and_structure() {
        let a = tempfile::tempdir().unwrap();
        std::fs::write(a.path().join("x"), b"1").unwrap();
        let h1 = hash_dir(a.path()).unwrap();
        std::fs::write(a.path().join("x"), b"2").unwrap();
        let h2 = hash_dir(a.path()).unwrap();
        assert_ne!(h1, h2);
        std::fs::rename(a.path().join("x"), a.path().join("y")).unwrap();
        assert_ne!(hash_dir(a.path()).unwrap(), h2);
        let b = tempfile::tempdir().unwrap();
        std::fs::create_dir(b.path().join("y")).unwrap();
        assert_ne!(hash_dir(b.path()).unwrap(), hash_dir(a.path()).unwrap());
        let id: ArtifactId = h1.to_string().parse().unwrap();
        assert_eq!(id, h1);
    }
}
