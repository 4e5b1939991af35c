//! The action index: one append-only file, `actions.idx`, that maps every committed action
//! key to its output artifacts and the pipeline that computed them. A run reads it once, so a
//! fully cached rerun of ten thousand steps is one read instead of ten thousand.
//!
//! The JSON action results under `actions/` stay the source of truth; this file is derived
//! from them. A key the index lacks is looked up in its JSON file and, when found, added to
//! the index; a missing index is therefore rebuilt by the next run that needs it, and a
//! damaged tail (power lost mid-write) is cut off. Whatever removes artifacts (`gc`,
//! `verify`, `remove`) deletes the index, so an entry never names a removed artifact.
//!
//! Record layout: `u32` payload length (little-endian), the payload (32-byte key, `u8`
//! output count, 32 bytes per output, `u16` pipeline-name length, the name), then the first
//! 8 bytes of the payload's blake3 hash.

use crate::{ArtifactId, Key};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

const MAGIC: &[u8] = b"labrun actions v1\n";

/// Keys are blake3 outputs, uniformly random: their first bytes are already a good hash.
#[derive(Default)]
struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    /// Mixes in the first 8 bytes of each write (a key's, and its length prefix).
    fn write(&mut self, bytes: &[u8]) {
        for (i, b) in bytes.iter().take(8).enumerate() {
            self.0 ^= u64::from(*b) << (8 * i);
        }
    }
}

type KeyMap = HashMap<Key, u32, std::hash::BuildHasherDefault<KeyHasher>>;
/// Buffered records are written out together once they reach this size (about 250).
const GROUP_BYTES: usize = 32 << 10;

/// One indexed action result.
#[derive(Debug, Clone, PartialEq)]
pub struct Indexed {
    pub outputs: Vec<ArtifactId>,
    pub pipeline: Option<String>,
}

/// The index of one cache, loaded on first use.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    /// The file's bytes and, per key, where its latest record's payload starts: entries
    /// are decoded only when looked up.
    map: OnceLock<(Vec<u8>, KeyMap)>,
    /// Encoded records not yet written.
    pending: Mutex<Vec<u8>>,
}

fn encode(key: &Key, e: &Indexed, out: &mut Vec<u8>) {
    let name = e.pipeline.as_deref().unwrap_or("").as_bytes();
    let name = &name[..name.len().min(u16::MAX as usize)];
    let outputs = &e.outputs[..e.outputs.len().min(u8::MAX as usize)];
    let mut payload = Vec::with_capacity(32 + 1 + 32 * outputs.len() + 2 + name.len());
    payload.extend_from_slice(&key.0);
    payload.push(outputs.len() as u8);
    for o in outputs {
        payload.extend_from_slice(&o.0);
    }
    payload.extend_from_slice(&(name.len() as u16).to_le_bytes());
    payload.extend_from_slice(name);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&payload);
    out.extend_from_slice(&blake3::hash(&payload).as_bytes()[..8]);
}

/// Indexes the records of `bytes[from..]` into `map` (payload offsets); returns where the
/// whole, valid records end.
fn decode(bytes: &[u8], from: usize, map: &mut KeyMap) -> usize {
    let mut at = from;
    while let Some(len) = bytes.get(at..at + 4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize) {
        let Some(payload) = bytes.get(at + 4..at + 4 + len) else { break };
        let Some(check) = bytes.get(at + 4 + len..at + 12 + len) else { break };
        if check != &blake3::hash(payload).as_bytes()[..8] || parse_payload(payload).is_none() {
            break;
        }
        let Ok(offset) = u32::try_from(at + 4) else { break };
        map.insert(Key(payload[..32].try_into().expect("checked")), offset);
        at += 12 + len;
    }
    at
}

fn parse_payload(p: &[u8]) -> Option<(Key, Vec<ArtifactId>, Option<String>)> {
    let key = Key(p.get(..32)?.try_into().ok()?);
    let n = *p.get(32)? as usize;
    let mut outputs = Vec::with_capacity(n);
    for k in 0..n {
        outputs.push(ArtifactId(p.get(33 + 32 * k..65 + 32 * k)?.try_into().ok()?));
    }
    let at = 33 + 32 * n;
    let len = u16::from_le_bytes(p.get(at..at + 2)?.try_into().ok()?) as usize;
    let name = std::str::from_utf8(p.get(at + 2..at + 2 + len)?).ok()?;
    (at + 2 + len == p.len()).then(|| (key, outputs, (!name.is_empty()).then(|| name.to_string())))
}

impl Journal {
    pub fn new(root: &Path) -> Journal {
        Journal { path: root.join("actions.idx"), map: OnceLock::new(), pending: Mutex::new(Vec::new()) }
    }

    fn map(&self) -> &(Vec<u8>, KeyMap) {
        self.map.get_or_init(|| self.load())
    }

    /// Reads the whole file; a damaged tail is cut off (under the file's lock, after
    /// checking again, since another process may be appending right now).
    fn load(&self) -> (Vec<u8>, KeyMap) {
        let mut map = KeyMap::default();
        let Ok(mut bytes) = fs::read(&self.path) else { return (Vec::new(), map) };
        if !bytes.starts_with(MAGIC) {
            // Not an index this version writes: start afresh.
            let _ = fs::remove_file(&self.path);
            return (Vec::new(), map);
        }
        map.reserve(bytes.len() / 110);
        let good = decode(&bytes, MAGIC.len(), &mut map);
        if good < bytes.len()
            && let Ok(mut f) = OpenOptions::new().read(true).write(true).open(&self.path)
            && f.lock().is_ok()
        {
            bytes.truncate(good);
            if f.seek(SeekFrom::Start(good as u64)).is_ok() && f.read_to_end(&mut bytes).is_ok() {
                let end = decode(&bytes, good, &mut map);
                if end < bytes.len() {
                    let _ = f.set_len(end as u64);
                    bytes.truncate(end);
                }
            }
        }
        (bytes, map)
    }

    pub fn get(&self, key: &Key) -> Option<Indexed> {
        let (bytes, map) = self.map();
        let at = *map.get(key)? as usize;
        let len = u32::from_le_bytes(bytes.get(at - 4..at)?.try_into().ok()?) as usize;
        let (_, outputs, pipeline) = parse_payload(bytes.get(at..at + len)?)?;
        Some(Indexed { outputs, pipeline })
    }

    /// Adds a result; it is written with the next group (or by [`Journal::flush`]).
    pub fn add(&self, key: &Key, e: &Indexed) {
        let full = {
            let mut buf = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            encode(key, e, &mut buf);
            buf.len() >= GROUP_BYTES
        };
        if full {
            self.flush();
        }
    }

    /// Writes the buffered records, in one write under the file's lock. A failure (a full
    /// disk) cuts the file back and drops them: the JSON results still hold them.
    pub fn flush(&self) {
        let bytes = { std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner())) };
        if bytes.is_empty() {
            return;
        }
        let Ok(mut f) = OpenOptions::new().create(true).append(true).open(&self.path) else { return };
        if f.lock().is_err() {
            return;
        }
        let Ok(len) = f.metadata().map(|m| m.len()) else { return };
        let mut all = Vec::with_capacity(MAGIC.len() + bytes.len());
        if len == 0 {
            all.extend_from_slice(MAGIC);
        }
        all.extend_from_slice(&bytes);
        if f.write_all(&all).is_err() {
            let _ = f.set_len(len);
        }
    }

    /// Deletes the index (after artifacts were removed); it is rebuilt from the JSON results.
    pub fn clear(&self) {
        *self.pending.lock().unwrap_or_else(|p| p.into_inner()) = Vec::new();
        if let Ok(f) = File::open(&self.path)
            && f.lock().is_ok()
        {
            let _ = fs::remove_file(&self.path);
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u8) -> (Key, Indexed) {
        (Key([n; 32]), Indexed { outputs: vec![ArtifactId([n + 1; 32])], pipeline: Some(format!("p{n}")) })
    }

    #[test]
    fn records_survive_a_reload_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(dir.path());
        for n in 0..3 {
            let (k, e) = entry(n);
            j.add(&k, &e);
        }
        j.flush();
        let whole = fs::metadata(dir.path().join("actions.idx")).unwrap().len();
        // Half a record, as a power cut mid-write would leave.
        let mut half = Vec::new();
        let (k, e) = entry(9);
        encode(&k, &e, &mut half);
        let mut f = OpenOptions::new().append(true).open(dir.path().join("actions.idx")).unwrap();
        f.write_all(&half[..half.len() / 2]).unwrap();
        drop(f);
        let j = Journal::new(dir.path());
        for n in 0..3 {
            let (k, e) = entry(n);
            assert_eq!(j.get(&k), Some(e));
        }
        assert_eq!(j.get(&Key([9; 32])), None);
        assert_eq!(fs::metadata(dir.path().join("actions.idx")).unwrap().len(), whole);
        // Appending after the cut keeps every record readable.
        let (k, e) = entry(5);
        j.add(&k, &e);
        j.flush();
        assert_eq!(Journal::new(dir.path()).get(&k), Some(e));
    }

    #[test]
    fn a_flipped_byte_ends_the_readable_part() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(dir.path());
        for n in 0..2 {
            let (k, e) = entry(n);
            j.add(&k, &e);
        }
        drop(j);
        let p = dir.path().join("actions.idx");
        let mut bytes = fs::read(&p).unwrap();
        let last = bytes.len() - 20;
        bytes[last] ^= 1;
        fs::write(&p, &bytes).unwrap();
        let j = Journal::new(dir.path());
        assert!(j.get(&entry(0).0).is_some());
        assert!(j.get(&entry(1).0).is_none());
    }
}
