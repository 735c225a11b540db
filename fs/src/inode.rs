//! The inode table: one node per merged object, a stable node id (which is also the st_ino the
//! kernel shows), the names it is known by, its real objects in the upper and lower layers,
//! and the kernel's lookup count. Sharded so lookups in different directories never contend.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::hash::{BuildHasher, Hash, RandomState};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};
use rustix::fs::{FileType, Stat};
use smallvec::SmallVec;

use crate::error::{Error, Result};

/// Node id of the root directory.
pub const ROOT: u64 = 1;
const SHARDS: usize = 64;

/// A directory or file of a lower layer: the layer's index in the stack and the path inside it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lower {
    pub layer: usize,
    pub path: PathBuf,
}

/// The mutable part of a node.
#[derive(Debug)]
pub struct NodeState {
    /// Names (parent id, name) this node is reachable by; the first one is used for upper paths.
    pub links: SmallVec<[(u64, OsString); 1]>,
    /// The object exists in the upper layer (at the first link's name).
    pub upper: bool,
    /// For directories present in the upper layer: an open fd of it.
    pub upper_dir: Option<Arc<OwnedFd>>,
    /// Directories: the lower directories merged below (top first); empty when opaque.
    /// Non-directories: the lower object it came from (kept after copy-up as the origin).
    pub lowers: Arc<[Lower]>,
    /// Attributes of the lower object (lower objects never change).
    pub lower_attr: Option<Stat>,
    /// Real (dev, ino) keys under which this hardlinked node is registered.
    pub keys: SmallVec<[(u64, u64); 2]>,
}

/// One merged object.
#[derive(Debug)]
pub struct Node {
    pub id: u64,
    pub kind: FileType,
    pub nlookup: AtomicU64,
    pub state: RwLock<NodeState>,
    /// Serialises copy-up of this node.
    pub copyup: Mutex<()>,
    /// Open file state shared by all handles of this node (passthrough backing id).
    pub io: Mutex<crate::io::NodeIo>,
    /// Directories: the merged entries of the stream being read (see `Overlay::dir_stream`).
    pub listing: crate::io::Listing,
}

impl Node {
    /// True for directories.
    pub fn is_dir(&self) -> bool {
        self.kind == FileType::Directory
    }
    /// The primary (parent, name), if the node still has a name.
    pub fn primary(&self) -> Option<(u64, OsString)> {
        self.state.read().links.first().cloned()
    }
    /// Whether the node is in the upper layer.
    pub fn is_upper(&self) -> bool {
        self.state.read().upper
    }
    /// The parent's id ("..": the root is its own parent).
    pub fn node_parent(&self) -> u64 {
        self.primary().map(|(p, _)| p).unwrap_or(self.id)
    }
}

type Shard<K, V> = RwLock<HashMap<K, V>>;

/// All nodes known to the kernel, and the name → node map ("dentries").
#[derive(Debug)]
pub struct NodeTable {
    nodes: Vec<Shard<u64, Arc<Node>>>,
    dentries: Vec<Shard<(u64, OsString), u64>>,
    /// Hardlinked objects: real (dev, ino) → node, so every name of one file is one node.
    links: Mutex<HashMap<(u64, u64), u64>>,
    next: AtomicU64,
    hasher: RandomState,
}

impl Default for NodeTable {
    fn default() -> Self {
        NodeTable {
            nodes: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            dentries: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            links: Mutex::new(HashMap::new()),
            next: AtomicU64::new(ROOT + 1),
            hasher: RandomState::new(),
        }
    }
}

impl NodeTable {
    fn node_shard(&self, id: u64) -> &Shard<u64, Arc<Node>> {
        &self.nodes[(id as usize) % SHARDS]
    }
    fn dentry_shard(&self, parent: u64, name: &OsStr) -> &Shard<(u64, OsString), u64> {
        let mut h = self.hasher.build_hasher();
        parent.hash(&mut h);
        name.hash(&mut h);
        &self.dentries[(std::hash::Hasher::finish(&h) as usize) % SHARDS]
    }

    /// The node with this id.
    pub fn get(&self, id: u64) -> Result<Arc<Node>> {
        self.node_shard(id)
            .read()
            .get(&id)
            .cloned()
            .ok_or(Error::Stale(id))
    }

    /// The node currently reachable at (parent, name), counting one more kernel lookup of it.
    pub fn lookup_cached(&self, parent: u64, name: &OsStr) -> Option<Arc<Node>> {
        let id = *self
            .dentry_shard(parent, name)
            .read()
            .get(&(parent, name.to_os_string()))?;
        let shard = self.node_shard(id).read();
        let node = shard.get(&id)?;
        node.nlookup.fetch_add(1, Ordering::AcqRel);
        Some(node.clone())
    }

    /// The node at (parent, name) without counting a lookup.
    pub fn peek(&self, parent: u64, name: &OsStr) -> Option<Arc<Node>> {
        let id = *self
            .dentry_shard(parent, name)
            .read()
            .get(&(parent, name.to_os_string()))?;
        self.get(id).ok()
    }

    /// The node of a hardlinked real object, counting one more lookup.
    pub fn lookup_link(&self, key: (u64, u64)) -> Option<Arc<Node>> {
        let id = *self.links.lock().get(&key)?;
        let shard = self.node_shard(id).read();
        let node = shard.get(&id)?;
        node.nlookup.fetch_add(1, Ordering::AcqRel);
        Some(node.clone())
    }

    /// Records that real object `key` (dev, ino) is node `id`.
    pub fn add_link_key(&self, key: (u64, u64), id: u64) {
        self.links.lock().insert(key, id);
    }

    /// Inserts a new node (with one kernel lookup) reachable at its links.
    pub fn insert(&self, kind: FileType, state: NodeState, id: Option<u64>) -> Arc<Node> {
        let id = id.unwrap_or_else(|| self.next.fetch_add(1, Ordering::Relaxed));
        let links = state.links.clone();
        let node = Arc::new(Node {
            id,
            kind,
            nlookup: AtomicU64::new(1),
            state: RwLock::new(state),
            copyup: Mutex::new(()),
            io: Mutex::new(Default::default()),
            listing: Default::default(),
        });
        self.node_shard(id).write().insert(id, node.clone());
        for (p, n) in links {
            self.bind(p, &n, id);
        }
        node
    }

    /// Makes (parent, name) resolve to node `id`.
    pub fn bind(&self, parent: u64, name: &OsStr, id: u64) {
        self.dentry_shard(parent, name)
            .write()
            .insert((parent, name.to_os_string()), id);
    }

    /// Forgets (parent, name) if it still resolves to `id`.
    pub fn unbind(&self, parent: u64, name: &OsStr, id: u64) {
        let mut shard = self.dentry_shard(parent, name).write();
        let key = (parent, name.to_os_string());
        if shard.get(&key) == Some(&id) {
            shard.remove(&key);
        }
    }

    /// The kernel dropped `n` lookups of node `id`; the node goes when none are left.
    pub fn forget(&self, id: u64, n: u64) {
        if id == ROOT {
            return;
        }
        let mut shard = self.node_shard(id).write();
        let Some(node) = shard.get(&id) else { return };
        let prev = node.nlookup.fetch_sub(n, Ordering::AcqRel);
        if prev > n {
            return;
        }
        let node = shard.remove(&id).expect("present");
        drop(shard);
        let st = node.state.read();
        for (p, name) in &st.links {
            self.unbind(*p, name, id);
        }
        if !st.keys.is_empty() {
            let mut links = self.links.lock();
            for k in &st.keys {
                if links.get(k) == Some(&id) {
                    links.remove(k);
                }
            }
        }
    }

    /// Number of live nodes (for tests and stats).
    pub fn len(&self) -> usize {
        self.nodes.iter().map(|s| s.read().len()).sum()
    }

    /// True when only the root is known.
    pub fn is_empty(&self) -> bool {
        self.len() <= 1
    }
}
